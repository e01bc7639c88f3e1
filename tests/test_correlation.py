"""Correlation classifiers of the one-model test: naive Bayes on tags, the ResNet, the stage."""

import numpy as np
import pandas as pd
import pytest
import torch

from dejavu.onemodel import correlation
from dejavu.data import crops, split, synth
from dejavu.attack import knn

pytestmark = pytest.mark.unit


def test_confidence_is_the_knn_confidence_of_the_same_distribution():
    hist = np.array([[3, 1, 0, 0], [1, 1, 1, 1], [4, 0, 0, 0]])
    prediction, confidence = correlation.classify(hist / 4)
    np.testing.assert_allclose(confidence, knn.confidence(hist))
    assert prediction.tolist() == [0, 0, 0]  # ties: the smaller class id


def test_naive_bayes_scores_match_the_formula_by_hand():
    tags = [["a", "b"], ["a"], ["b", "c"], ["c"]]
    labels = np.array([0, 0, 1, 1])
    fitted = correlation.fit_naive_bayes(tags, labels, classes=3)
    scores = correlation.naive_bayes_log_scores([["a", "c", "unseen"]], fitted, smoothing=1.0)
    # count_c(a) = (2, 0, 0), count(a) = 2; count_c(c) = (0, 2, 0), count(c) = 2; C = 3
    expected = [np.log(3 / 5) + np.log(1 / 5), np.log(1 / 5) + np.log(3 / 5),
                np.log(1 / 5) + np.log(1 / 5)]
    np.testing.assert_allclose(scores[0], expected)
    # a tie between classes 0 and 1 goes to 0; a crop without known tags is uniform
    probs = correlation.softmax(correlation.naive_bayes_log_scores(
        [["a", "c"], ["b"], []], fitted))
    prediction, confidence = correlation.classify(probs)
    assert prediction.tolist() == [0, 0, 0]
    np.testing.assert_allclose(probs[2], 1 / 3)
    assert confidence[2] == pytest.approx(-np.log(3))


def test_naive_bayes_counts_a_repeated_tag_once():
    fitted = correlation.fit_naive_bayes([["a", "a", "a"]], np.array([1]), classes=2)
    assert fitted.counts.tolist() == [[0, 1]]


def test_synthetic_tags_name_the_scene_and_the_details_inside_the_crop():
    index = pd.DataFrame({"scene": [7], "details": [[
        [2.0, 2.0, 1.0, 1.0, 0.9, 0.1, 0.1],    # red disc at (2, 2): inside the crop
        [20.0, 20.0, 1.5, 0.0, 0.1, 0.1, 0.9],  # blue square at (20, 20): outside
        [9.5, 2.0, 1.0, 1.0, 0.9, 0.9, 0.1],    # yellow disc overlapping the crop's right edge
    ]]})
    crop = pd.DataFrame({"row": [0], "x0": [0], "y0": [0], "x1": [9], "y1": [9]})
    assert correlation.synthetic_tags(index, crop) == [["scene:7", "detail:100", "detail:110"]]


def test_tags_file_needs_id_and_tag(tmp_path):
    (tmp_path / "bad.csv").write_text("image,label\nx,1\n")
    with pytest.raises(ValueError, match="lacks columns"):
        correlation.read_tags(str(tmp_path / "bad.csv"))
    (tmp_path / "tags.csv").write_text("id,tag\nx,dog\nx,grass\ny,sky\n")
    table = correlation.read_tags(str(tmp_path / "tags.csv"))
    assert correlation.tags_of(table, pd.Series(["x", "z", "y"])) == [["dog", "grass"], [],
                                                                      ["sky"]]


@pytest.mark.parametrize("depth", [10, 18, 34])
def test_resnet_depths_and_widths(depth):
    model = correlation.ResNetClassifier(5, depth=depth, width=4)
    blocks = sum(isinstance(m, correlation.BasicBlock) for m in model.modules())
    assert blocks == sum(correlation.BLOCKS[depth])
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 5)
    assert model.head.in_features == 32  # width * 8
    big = correlation.ResNetClassifier(3, depth=18, width=64, small_stem=False)
    assert big(torch.rand(1, 3, 64, 64)).shape == (1, 3)


def colour_crops(n, rng, side=8):
    """Class 0 red-ish, class 1 blue-ish, with noise: a crop's colour gives its class."""
    labels = rng.integers(0, 2, n)
    base = np.where(labels[:, None] == 0, [200, 40, 40], [40, 40, 200])
    images = base[:, None, None, :] + rng.normal(0, 20, (n, side, side, 3))
    return np.clip(images, 0, 255).astype(np.uint8), labels


def test_resnet_learns_a_class_the_background_colour_gives_away():
    rng = np.random.default_rng(0)
    train_x, train_y = colour_crops(64, rng)
    test_x, test_y = colour_crops(32, rng)
    cfg = correlation.ResNetConfig(depth=10, width=4, epochs=8, batch_size=16, lr=0.01,
                                   warmup_epochs=1)
    model = correlation.train_resnet(train_x, train_y, 2, cfg, torch.device("cpu"))
    probs = correlation.resnet_probabilities(model, test_x, torch.device("cpu"))
    assert (probs.argmax(1) == test_y).mean() == 1.0
    np.testing.assert_allclose(probs.sum(1), 1.0)
    again = correlation.train_resnet(train_x, train_y, 2, cfg, torch.device("cpu"))
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)  # seeded: the same weights


def test_training_mask_takes_the_valid_crops_of_the_training_set():
    table = pd.DataFrame({"set": ["A", "B", "B", "heldout", "B"],
                          "crop_row": [0, 1, 2, 3, -1]})
    assert correlation.training_mask(table, "B").tolist() == [False, True, True, False, False]
    assert correlation.training_mask(table, "B", "other+heldout").tolist() == [
        False, True, True, True, False]
    with pytest.raises(ValueError, match="train_on"):
        correlation.training_mask(table, "B", "everything")


@pytest.fixture(scope="module")
def tiny_crops(tmp_path_factory):
    d = tmp_path_factory.mktemp("corr")
    synth.run(str(d / "images.zarr"), str(d / "index.parquet"), classes=3,
              images_per_class=24, image_size=16, correlation=0.9, seed=0)
    split.run(str(d / "index.parquet"), str(d / "split.parquet"), str(d / "sizes.csv"), npc=4,
              public_test_per_class=2, seed=0)
    crops.run(str(d / "images.zarr"), str(d / "index.parquet"), str(d / "split.parquet"),
              str(d / "crops.zarr"), str(d / "crops.parquet"), mode="periphery", side=16,
              min_side=3)
    return d


@pytest.mark.parametrize("classifier", ["naive_bayes", "resnet"])
def test_stage_predicts_every_valid_crop_and_marks_its_training_crops(tiny_crops, classifier):
    d = tiny_crops
    out = d / f"{classifier}.parquet"
    correlation.run(str(d / "crops.zarr"), str(d / "crops.parquet"), str(d / "split.parquet"),
                    str(out), classifier=classifier, trained_on="B",
                    model_path=str(d / f"{classifier}.pt"), index_path=str(d / "index.parquet"),
                    resnet={"depth": 10, "width": 4, "epochs": 2, "batch_size": 8})
    table = pd.read_parquet(d / "crops.parquet")
    predicted = pd.read_parquet(out)
    valid = table[table["crop_row"] >= 0]
    assert sorted(predicted["id"]) == sorted(valid["id"])
    assert set(predicted.loc[predicted["trained"], "set"]) == {"B"}
    assert predicted["trained"].sum() == (valid["set"] == "B").sum()
    assert (predicted["correct"] == (predicted["prediction"] == predicted["label"])).all()
    # three classes: the top classes are all of them, most probable first, the first the
    # prediction, and their probabilities the whole distribution the confidence is of
    top, probs = np.stack(predicted["top5"]), np.stack(predicted["top5_probs"])
    assert top.shape == probs.shape == (len(predicted), 3)
    assert (np.sort(top, axis=1) == [0, 1, 2]).all() and (np.diff(probs, axis=1) <= 0).all()
    assert (top[:, 0] == predicted["prediction"]).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(predicted["confidence"], -correlation.entropy(probs), atol=1e-5)
    assert (d / f"{classifier}.pt").stat().st_size > 0


def test_resnet_trained_on_crops_read_from_the_store_equals_it_trained_on_held_crops(
        tiny_crops, tmp_path, monkeypatch):
    """Training crops over HOLD_BYTES stream from the store a batch at a time (StoredRows,
    rows read out of order): the same weights and predictions, bit for bit."""
    d, outs = tiny_crops, []
    for name, hold in (("held", correlation.HOLD_BYTES), ("streamed", 0)):
        monkeypatch.setattr(correlation, "HOLD_BYTES", hold)
        outs.append(tmp_path / f"{name}.parquet")
        correlation.run(str(d / "crops.zarr"), str(d / "crops.parquet"),
                        str(d / "split.parquet"), str(outs[-1]), classifier="resnet",
                        trained_on="A", model_path=str(tmp_path / f"{name}.pt"),
                        resnet={"depth": 10, "width": 4, "epochs": 2, "batch_size": 8})
    weights = [torch.load(tmp_path / f"{name}.pt", weights_only=True)["state_dict"]
               for name in ("held", "streamed")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    pd.testing.assert_frame_equal(pd.read_parquet(outs[0]), pd.read_parquet(outs[1]))


def test_naive_bayes_on_the_scene_tag_reads_the_correlated_class(tiny_crops):
    """correlation 0.9: the scene gives the class 9 times in 10 (plus chance), so naive
    Bayes on the scene tag is far above chance on crops it did not train on."""
    d = tiny_crops
    correlation.run(str(d / "crops.zarr"), str(d / "crops.parquet"), str(d / "split.parquet"),
                    str(d / "nb.parquet"), classifier="naive_bayes", trained_on="A",
                    train_on="other+heldout", index_path=str(d / "index.parquet"))
    predicted = pd.read_parquet(d / "nb.parquet")
    assert predicted.loc[~predicted["trained"], "correct"].mean() >= 0.7


def test_stage_refuses_a_set_without_crops_and_naive_bayes_without_tags(tiny_crops):
    d = tiny_crops
    args = (str(d / "crops.zarr"), str(d / "crops.parquet"), str(d / "split.parquet"),
            str(d / "x.parquet"))
    with pytest.raises(ValueError, match="no valid crops of set C"):
        correlation.run(*args, classifier="resnet", trained_on="C")
    with pytest.raises(ValueError, match="needs crop tags"):
        correlation.run(*args, classifier="naive_bayes", trained_on="B")


NAIVE_BAYES_SCRIPT = """
import numpy as np
from dejavu.onemodel.naive_bayes import fit_naive_bayes, naive_bayes_log_scores
rng = np.random.default_rng(0)
vocab = [f"tag:{i}" for i in range(40)]
tags = [list(rng.choice(vocab, 8, replace=False)) for _ in range(300)]
labels = rng.integers(0, 10, 300)
scores = naive_bayes_log_scores(tags, fit_naive_bayes(tags, labels, 10))
print(scores.tobytes().hex())
"""


def test_naive_bayes_scores_do_not_depend_on_the_string_hash_seed():
    """Each Python process hashes strings with its own seed, which orders sets of tags; the
    scores must be the same to the bit in every process (a rerun job equals the first)."""
    import os
    import subprocess
    import sys
    out = [subprocess.run([sys.executable, "-c", NAIVE_BAYES_SCRIPT], capture_output=True,
                          text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed}
                          ).stdout for seed in ("1", "2", "3")]
    assert out[0] == out[1] == out[2]


def test_resnet_stopped_at_its_time_limit_continues_to_the_same_classifier(
        tiny_crops, tmp_path, monkeypatch):
    """The stage with a time limit already past, training crops streamed from the store:
    each call trains one epoch, keeps its state and stops (OutOfTime); the chain of calls
    ends with the weights and predictions of one uninterrupted run, its state cleared."""
    from dejavu.core.deadline import OutOfTime
    d = tiny_crops
    monkeypatch.setattr(correlation, "HOLD_BYTES", 0)

    def run(name: str, **limit):
        correlation.run(str(d / "crops.zarr"), str(d / "crops.parquet"),
                        str(d / "split.parquet"), str(tmp_path / f"{name}.parquet"),
                        classifier="resnet", trained_on="A",
                        model_path=str(tmp_path / f"{name}.pt"),
                        resnet={"depth": 10, "width": 4, "epochs": 3, "batch_size": 8},
                        **limit)
    stops = []
    while True:
        try:
            run("stopped", resume_dir=str(tmp_path / "resume"), max_runtime=1e-9)
            break
        except OutOfTime as stopped:
            stops.append(str(stopped))
    assert stops == [f"stopped after epoch {e} of 3 (time limit)" for e in (1, 2)]
    assert not (tmp_path / "resume").exists()
    run("whole")
    weights = [torch.load(tmp_path / f"{name}.pt", weights_only=True)["state_dict"]
               for name in ("stopped", "whole")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "stopped.parquet"),
                                  pd.read_parquet(tmp_path / "whole.parquet"))
