import copy
import json
from itertools import product

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dejavu.onemodel import sslmem, sslmem_summary
from dejavu.training.augment import AugmentConfig, ViewAugment
from dejavu.core.models import SSLModel
from dejavu.attack.score import heldout_halves

pytestmark = pytest.mark.unit

TRAINING_VIEW = AugmentConfig(blur_prob=(0.5, 0.5), solarize_prob=(0.2, 0.2)).view(0)
IDENTITY = ViewAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=0.0, jitter_prob=0.0,
                       grayscale_prob=0.0, blur_prob=0.0, solarize_prob=0.0)
CROP_FLIP = ViewAugment(scale=(0.2, 0.6), flip_prob=0.5, jitter_prob=0.0, grayscale_prob=0.0,
                        blur_prob=0.0, solarize_prob=0.0)


def random_images(n: int, side: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def tiny_model(seed: int = 0) -> SSLModel:
    torch.manual_seed(seed)
    model = SSLModel("convnet", projector_dims=[16, 8], width=4, image_size=16)
    for m in model.modules():  # non-trivial running statistics, so eval mode matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def make_split(sets: list[str], attacked: list[bool] | None = None) -> pd.DataFrame:
    n = len(sets)
    rng = np.random.default_rng(1)
    return pd.DataFrame({"row": np.arange(n), "id": [f"img-{i:03d}" for i in rng.permutation(n)],
                         "label": np.arange(n) % 2, "set": sets,
                         "attacked": [True] * n if attacked is None else attacked,
                         "height": 16, "width": 16})


def images_by_set(split: pd.DataFrame, images: np.ndarray) -> dict[str, np.ndarray]:
    """Images indexed by split row, in `scored_rows` order."""
    return {name: images[rows["row"].to_numpy()]
            for name, rows in sslmem.scored_rows(split).items()}


def test_identity_augmentation_moves_nothing():
    d = sslmem.view_distances(tiny_model(), random_images(6), IDENTITY, n_views=3, seed=0)
    assert d.shape == (3, 6)
    assert np.abs(d).max() < 1e-5
    assert sslmem.view_distances(tiny_model(), random_images(6), TRAINING_VIEW, 3, 0).min() > 1e-3


def test_distances_do_not_depend_on_batch_size_and_draws_are_seeded():
    model, images = tiny_model(), random_images(11)
    whole = sslmem.view_distances(model, images, TRAINING_VIEW, 4, seed=3, batch_size=64)
    pieces = sslmem.view_distances(model, images, TRAINING_VIEW, 4, seed=3, batch_size=3)
    np.testing.assert_allclose(pieces, whole, rtol=1e-5, atol=1e-6)
    other_seed = sslmem.view_distances(model, images, TRAINING_VIEW, 4, seed=4)
    assert np.abs(other_seed - whole).max() > 1e-3
    # each draw has its own stream: the first 2 of 4 draws are the 2 draws of n_views=2
    np.testing.assert_allclose(sslmem.view_distances(model, images, TRAINING_VIEW, 2, seed=3),
                               whole[:2], rtol=1e-5, atol=1e-6)
    assert np.abs(whole[0] - whole[1]).max() > 1e-3  # and the draws differ


class Scaled(nn.Module):
    def __init__(self, model: nn.Module, scale: float):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x):
        return tuple(self.scale * e for e in self.model(x))


def test_distances_are_between_normalised_representations():
    model, images = tiny_model(), random_images(7)
    d = sslmem.view_distances(model, images, TRAINING_VIEW, 3, seed=0)
    np.testing.assert_allclose(
        sslmem.view_distances(Scaled(model, 25.0), images, TRAINING_VIEW, 3, seed=0), d,
        rtol=1e-4)
    assert d.max() <= 2.0


def test_distances_share_draws_and_average_them():
    a, b, images = tiny_model(0), tiny_model(1), random_images(5)
    d = sslmem.distances({"A": a, "B": b}, images, TRAINING_VIEW, 3, seed=0)["backbone"]
    np.testing.assert_allclose(d["B"], sslmem.view_distances(b, images, TRAINING_VIEW, 3, 0)
                               .mean(0), rtol=1e-6)
    assert d["A"].shape == (5,)
    projector = sslmem.distances({"A": a}, images, TRAINING_VIEW, 3, 0,
                                 embeddings=["projector"])["projector"]
    assert not np.allclose(projector["A"], d["A"])
    with pytest.raises(ValueError, match="embedding"):
        sslmem.distances({"A": a}, images, TRAINING_VIEW, 3, 0, embeddings=["head"])


def test_layermem_is_sslmem_at_each_layer_from_one_pass():
    """Distances at a backbone stage are those between its normalised pooled outputs of an
    image and of its view (by hand); computing several embeddings at once changes none."""
    from dejavu.training.augment import apply
    model, images = tiny_model(), random_images(6)
    names = ["block2", "backbone", "hidden1", "projector"]
    together = sslmem.distances({"A": model}, images, TRAINING_VIEW, 2, seed=3,
                                embeddings=names)
    for name in names:
        alone = sslmem.view_distances(model, images, TRAINING_VIEW, 2, 3, embedding=name)
        np.testing.assert_array_equal(together[name]["A"], alone.mean(0))
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    params = sslmem.draws(len(images), TRAINING_VIEW, 2, 3)[1]
    with torch.no_grad():
        model.eval()
        stage = model.backbone.features[:2]
        pooled = [torch.nn.functional.normalize(stage(model.normalize_input(v)).mean(dim=(2, 3)),
                                                dim=1)
                  for v in (x, apply(x, params, TRAINING_VIEW))]
    np.testing.assert_allclose(
        sslmem.view_distances(model, images, TRAINING_VIEW, 2, 3, embedding="block2")[1],
        (pooled[0] - pooled[1]).norm(dim=1).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    model, images = tiny_model(), random_images(9)
    cpu = sslmem.view_distances(model, images, TRAINING_VIEW, 3, 0, device="cpu")
    cuda = sslmem.view_distances(model, images, TRAINING_VIEW, 3, 0, device="cuda")
    np.testing.assert_allclose(cuda, cpu, atol=2e-3)


def test_memorization_sign_and_normalisation():
    rng = np.random.default_rng(0)
    d_t, d_r = rng.random(50), rng.random(50)
    m, m_norm = sslmem.memorization(d_t, d_r)
    np.testing.assert_array_equal(m, d_r - d_t)
    assert m_norm.max() - m_norm.min() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(m_norm * (m.max() - m.min()), m)
    m, m_norm = sslmem.memorization(np.ones(3), np.full(3, 2.0))
    assert m.tolist() == [1.0, 1.0, 1.0] and m_norm.tolist() == [0.0, 0.0, 0.0]


def test_identical_models_give_zero_memorization():
    split = make_split(["A"] * 4 + ["B"] * 4 + ["heldout"] * 5)
    model = tiny_model()
    table = sslmem.score_table(split, images_by_set(split, random_images(13)),
                               {"A": model, "B": copy.deepcopy(model)}, view=TRAINING_VIEW,
                               n_views=2, batch_size=4)
    assert (table["m"] == 0).all() and (table["m_norm"] == 0).all()
    assert (table["d_target"] > 0).all()


def test_heldout_alternation_matches_the_heldout_control():
    ids = np.array([f"x{i}" for i in np.random.default_rng(0).permutation(9)])
    targets = sslmem.heldout_targets(ids)
    order = np.argsort(ids)
    assert list(targets[order]) == ["A", "B"] * 4 + ["A"]
    knn = pd.DataFrame({"id": ids, "set": "heldout", "correct": True, "confidence": 0.0,
                        "mean_distance": 0.0})
    target_a, target_b = heldout_halves(knn, knn, split=True)
    assert set(target_a.sample_id) == set(ids[targets == "A"])
    assert set(target_b.sample_id) == set(ids[targets == "B"])


def test_score_table_rows_targets_and_boxless_images():
    sets = ["A"] * 5 + ["B"] * 4 + ["heldout"] * 5 + ["public"] * 2
    attacked = [True, True, True, False, False] + [True] * 3 + [False] + [True] * 5 + [False] * 2
    split = make_split(sets, attacked)
    models = {"A": tiny_model(0), "B": tiny_model(1)}
    images = images_by_set(split, random_images(16))
    table = sslmem.score_table(split, images, models, view=TRAINING_VIEW, n_views=2)
    assert list(table.columns) == sslmem.COLUMNS
    assert table["set"].value_counts().to_dict() == {"A": 3, "B": 3, "heldout": 5}
    train = table[table["set"] != "heldout"]
    assert (train["target"] == train["set"]).all()
    held = table[table["set"] == "heldout"].sort_values("id")
    assert held["target"].tolist() == ["A", "B", "A", "B", "A"]
    np.testing.assert_allclose(table["m"], table["d_reference"] - table["d_target"])
    assert table["m_norm"].max() - table["m_norm"].min() == pytest.approx(1.0, abs=1e-12)

    both = sslmem.score_table(split, images, models, view=TRAINING_VIEW, n_views=2,
                              split_heldout=False)
    held = both[both["set"] == "heldout"]
    assert len(held) == 10 and (held.groupby("id")["target"].apply(set) == {"A", "B"}).all()
    # a held-out image's two rows are mirror images: m flips sign
    by_target = held.pivot(index="id", columns="target", values="m")
    np.testing.assert_allclose(by_target["A"], -by_target["B"])
    with pytest.raises(ValueError, match="set B"):
        sslmem.score_table(split, {**images, "B": images["B"][:2]}, models,
                           view=TRAINING_VIEW)


class RedMemorizer(nn.Module):
    """Backbone: the 4 x 4 average-pooled image, which any crop or flip moves; with
    `memorizes`, images whose red channel dominates map to one constant vector instead, as a
    model that memorized them would keep all their views together."""

    def __init__(self, memorizes: bool):
        super().__init__()
        self.memorizes = memorizes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.adaptive_avg_pool2d(x, 4).flatten(1)
        if self.memorizes:
            red = x[:, 0].mean((1, 2)) > x[:, 1:].mean((1, 2, 3))
            h = torch.where(red[:, None], torch.ones_like(h), h)
        return h, h


def test_memorization_is_positive_exactly_where_the_target_is_invariant():
    rng = np.random.default_rng(0)
    n, side = 12, 16
    images = rng.integers(0, 100, (n, side, side, 3), dtype=np.uint8)
    red = np.zeros(n, bool)
    red[[0, 2, 3, 7]] = True  # in set A: memorized by model A
    images[red, ..., 0] = rng.integers(160, 256, (red.sum(), side, side))
    images[~red, ..., 2] = rng.integers(160, 256, ((~red).sum(), side, side))
    split = make_split(["A"] * 8 + ["B"] * 4)
    table = sslmem.score_table(split, images_by_set(split, images),
                               {"A": RedMemorizer(True), "B": RedMemorizer(False)},
                               view=CROP_FLIP, n_views=4)
    is_red = red[split.set_index("id").loc[table["id"], "row"].to_numpy()]
    assert ((table["m"] > 0) == is_red).all()
    assert (table.loc[~is_red, "m"] == 0).all()
    assert (table.loc[is_red, "d_target"] < 1e-6).all()
    assert (table.loc[is_red, "d_target"] < table.loc[is_red, "d_reference"]).all()
    assert table["m_norm"].max() == pytest.approx(1.0)  # min is 0: span = max


def test_auc_counts_pairs_with_ties_half():
    rng = np.random.default_rng(0)
    for _ in range(5):
        pos, neg = rng.integers(0, 6, 17).astype(float), rng.integers(0, 6, 11).astype(float)
        pairs = [(p > q) + 0.5 * (p == q) for p, q in product(pos, neg)]
        assert sslmem_summary.auc(pos, neg) == pytest.approx(np.mean(pairs), abs=1e-12)
    assert sslmem_summary.auc([1.0, 2.0], [0.0]) == 1.0 and sslmem_summary.auc([], [1.0]) is None


def test_summarize_known_answer():
    table = pd.DataFrame({
        "id": [f"i{k}" for k in range(12)],
        "set": ["A"] * 5 + ["B"] * 5 + ["heldout"] * 2,
        "m": [9.0, 8.0, 1.0, 0.0, -1.0, 4.0, 3.0, 2.0, 0.0, 0.0, 1.0, -1.0]})
    groups = ["memorized", "correlated", "correlated", "unassociated", "correlated",
              "memorized", "memorized", "correlated", "unassociated", "unassociated"]
    partition = pd.DataFrame({"id": table["id"][:10][::-1], "set": table["set"][:10][::-1],
                              "group": groups[::-1]})
    out = sslmem_summary.summarize(table, partition)
    assert out["n_train"] == 10 and out["n_heldout"] == 2 and out["n_partitioned"] == 10
    assert out["mean_m_train"] == pytest.approx(2.6)
    assert out["mean_m_heldout"] == pytest.approx(0.0)
    assert out["mean_m_difference"] == pytest.approx(2.6)
    # training m vs held-out {1, -1}: pairs won 2 for 9, 8, 4, 3, 2; 1.5 for 1 and the three 0s
    # (1 beats -1, ties 1; 0 beats -1); 0.5 for -1 (ties -1)
    assert out["auc_train_heldout"] == pytest.approx((5 * 2 + 1.5 + 3 * 1 + 0.5) / 20)
    assert out["mean_m_memorized"] == pytest.approx((9 + 4 + 3) / 3)
    assert out["mean_m_correlated"] == pytest.approx((8 + 1 - 1 + 2) / 4)
    assert out["mean_m_unassociated"] == pytest.approx(0.0)
    assert out["mean_m_misrepresented"] is None
    memorized = np.array(groups) == "memorized"
    assert out["corr_m_memorized"] == pytest.approx(np.corrcoef(table["m"][:10], memorized)[0, 1])
    assert out["share_memorized_top10"] == 1.0  # top ceil(1) image: m = 9, memorized
    assert out["share_memorized_all"] == pytest.approx(0.3)
    json.dumps(out, allow_nan=False)
    # top 30 %: m = 9, 8, 4, of which 9 and 4 are memorized
    assert sslmem_summary.summarize(table, partition, top=0.3)["share_memorized_top30"] == \
        pytest.approx(2 / 3)


def test_summarize_without_heldout_or_partition_is_json():
    table = pd.DataFrame({"id": ["a", "b"], "set": ["A", "B"], "m": [1.0, 1.0]})
    out = sslmem_summary.summarize(table, pd.DataFrame({"id": ["a", "b"], "set": ["A", "B"],
                                                "group": ["correlated"] * 2}))
    assert out["mean_m_heldout"] is None and out["auc_train_heldout"] is None
    assert out["corr_m_memorized"] is None and out["share_memorized_all"] == 0.0
    json.dumps(out, allow_nan=False)
    with pytest.raises(ValueError, match="groups"):
        sslmem_summary.summarize(table, pd.DataFrame({"id": ["a"], "set": ["A"], "group": ["lost"]}))


def test_run_on_a_tiny_store(tmp_path):
    from dejavu.data import split, synth
    from dejavu.training import train
    images, index = str(tmp_path / "images.zarr"), str(tmp_path / "index.parquet")
    synth.run(images, index, classes=2, images_per_class=12, image_size=16, correlation=0.5,
              seed=0)
    split_path = str(tmp_path / "split.parquet")
    split.run(index, split_path, str(tmp_path / "sizes.csv"), npc=3, public_test_per_class=1)
    for subset, seed in (("A", 0), ("B", 1)):
        train.run_init(str(tmp_path / f"{subset}.pt"), backbone="convnet", projector_dims=[16, 8],
                       width=4, seed=seed, subset=subset, image_size=16)
    out = str(tmp_path / "sslmem.parquet")
    sslmem.run(str(tmp_path / "A.pt"), str(tmp_path / "B.pt"), images, split_path, out,
               side=16, n_views=2, augment={"blur_prob": [0.0, 0.0]}, device="cpu",
               batch_size=5, along_depth=["projector", "block1", "backbone"],
               out_layers=str(tmp_path / "layers.parquet"))
    table = pd.read_parquet(out)
    by_layer = pd.read_parquet(tmp_path / "layers.parquet").set_index("embedding")
    assert list(by_layer.index) == ["block1", "backbone", "projector"]  # input to output
    assert by_layer.loc["backbone", "mean_m_train"] == pytest.approx(
        sslmem_summary.summarize(table)["mean_m_train"], rel=1e-12)  # sslmem.embedding: backbone
    assert list(table.columns) == sslmem.COLUMNS
    expected = pd.read_parquet(split_path).query("attacked").groupby("set").size()
    assert table.groupby("set").size().to_dict() == expected[["A", "B", "heldout"]].to_dict()
    assert table["id"].is_unique and table[["d_target", "d_reference"]].gt(0).all().all()
    assert table["m_norm"].max() - table["m_norm"].min() == pytest.approx(1.0, abs=1e-12)
    json.dumps(sslmem_summary.summarize(table), allow_nan=False)


def test_scores_read_from_the_store_a_batch_at_a_time_equal_those_of_sets_held_whole(
        tmp_path):
    """`read_scored`'s readers (images read when a batch is sliced; batches of 5 that span
    two sets; stored canvases that need resizing) give the table of the sets read whole."""
    from dejavu.core.store import write_images
    from dejavu.data.split import read_set
    rng = np.random.default_rng(0)
    n = 23
    canvases = rng.integers(0, 256, (n, 20, 20, 3), dtype=np.uint8)
    write_images(tmp_path / "images.zarr", canvases, chunk_rows=4)
    split = make_split(["A"] * 8 + ["B"] * 7 + ["heldout"] * 6 + ["public"] * 2)
    split["height"], split["width"] = np.where(np.arange(n) % 3, 20, 14), 20
    split.to_parquet(tmp_path / "split.parquet")
    held = {}
    for name, rows in sslmem.scored_rows(split).items():
        whole, chosen = read_set(str(tmp_path / "images.zarr"), str(tmp_path / "split.parquet"),
                                 name, 16)
        held[name] = whole[np.searchsorted(chosen["row"].to_numpy(), rows["row"].to_numpy())]
    streamed = sslmem.read_scored(str(tmp_path / "images.zarr"), str(tmp_path / "split.parquet"),
                                  16)
    assert not isinstance(streamed["A"], np.ndarray)
    models = {"A": tiny_model(0), "B": tiny_model(1)}
    tables = [sslmem.score_table(split, images, models, view=TRAINING_VIEW, n_views=2,
                                 batch_size=5) for images in (held, streamed)]
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
    assert len(tables[0]) == 8 + 7 + 6
