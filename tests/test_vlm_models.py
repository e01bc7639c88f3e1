"""The vision-language half's parts: the synthetic captioned benchmark (dejavu/vlm/synth.py),
the tokenizer and text tower (dejavu/core/text.py), and CLIP training
(dejavu/training/methods/clip.py), against hand-computed answers."""

import math

import numpy as np
import pytest
import torch

from dejavu.core import text
from dejavu.training.methods import Progress, get
from dejavu.training.methods import clip
from dejavu.vlm import synth

pytestmark = pytest.mark.unit


def test_the_captioned_benchmark_holds_what_its_definition_says():
    cfg = synth.CaptionedConfig(records=300, seed=3)
    images, records = synth.generate(cfg)
    again, same = synth.generate(cfg)
    assert np.array_equal(images, again) and records.equals(same)
    assert images.shape == (300, 32, 32, 3) and records["id"].tolist() == list(range(300))
    rng = np.random.default_rng(cfg.seed)  # the draws generate makes first
    synth.scene_palette(rng, cfg.n_scenes)
    synth.class_colours(cfg.n_objects, rng)
    typical = synth.scene_objects(cfg, rng)
    for row in records.itertuples():
        assert len(row.objects) == len(set(row.objects)) == cfg.from_scene + cfg.own
        assert len(set(row.objects) & set(typical[row.scene])) >= cfg.from_scene
        assert row.named[0] in typical[row.scene] and row.named[0] in row.objects
        assert synth.SCENE_WORDS[row.scene] in row.caption
        assert synth.OBJECT_NOUNS[row.named[0]] in row.caption
    assert records["caption"].nunique() > 0.9 * len(records)   # captions nearly unique
    combos = records["objects"].map(tuple)
    assert combos.nunique() > 0.5 * len(records)                 # own combinations vary


def test_tokens_hash_words_end_and_pad():
    ids = text.tokenize(["A cup, a CUP!", "", "one two three four five"], context=4,
                        buckets=100)
    cup, a = ids[0][1], ids[0][0]
    assert ids[0].tolist()[:3] == [a, cup, a] and ids[0][3] == text.END  # 3 words, END
    assert ids[1].tolist() == [text.END, text.PAD, text.PAD, text.PAD]
    assert ids[2][3] == text.END and len(set(ids[2][:3])) == 3            # truncated
    assert (ids >= 0).all() and (ids < text.RESERVED + 100).all()
    assert text.tokenize(["a cup"], 4, 100)[0][1] == cup                    # fixed ids


def test_the_text_tower_reads_the_caption_not_its_padding():
    torch.manual_seed(0)
    tower = text.TextTower(out_dim=8, buckets=50, context=12, dim=16, depth=1, heads=2).eval()
    ids = torch.from_numpy(text.tokenize(["a quiet beach with a kite", "a cup"], 12, 50))
    with torch.no_grad():
        out = tower(ids)
        short = tower(ids[:, :8])  # the same captions in a shorter context
    assert out.shape == (2, 8)
    torch.testing.assert_close(out, short, rtol=1e-5, atol=1e-6)
    assert (out[0] - out[1]).abs().max() > 1e-3


def test_the_clip_loss_is_the_mean_of_both_cross_entropies():
    g = torch.Generator().manual_seed(0)
    image_z, text_z = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    log_scale = torch.tensor(math.log(5.0))
    loss = clip.clip_loss(image_z, text_z, log_scale).item()
    i = image_z.double() / image_z.double().norm(dim=1, keepdim=True)
    t = text_z.double() / text_z.double().norm(dim=1, keepdim=True)
    logits = 5.0 * (i @ t.T)
    by_image = -sum(logits[k, k] - torch.logsumexp(logits[k], 0) for k in range(4)) / 4
    by_text = -sum(logits[k, k] - torch.logsumexp(logits[:, k], 0) for k in range(4)) / 4
    assert loss == pytest.approx(float(by_image + by_text) / 2, rel=1e-6)
    # the scale is clamped at 100: a larger learned scale scores as 100
    big = clip.clip_loss(image_z, text_z, torch.tensor(10.0)).item()
    assert big == pytest.approx(clip.clip_loss(image_z, text_z,
                                               torch.tensor(math.log(100.0))).item())


def small_vlm(name: str, records: int):
    """A small vision-language method on `records` captioned images: (method, images,
    their captions' token ids)."""
    from dejavu.core.models import SSLModel
    torch.manual_seed(0)
    images, table = synth.generate(synth.CaptionedConfig(records=records, seed=1))
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    ids = torch.from_numpy(text.tokenize(table["caption"].tolist(), 16, 1000))
    method = get(name)(SSLModel("convnet", [64, 32], width=8), context=16, buckets=1000,
                       text_dim=32, text_depth=1, text_heads=2)
    return method, x, ids


def fit(method, x, ids, steps: int) -> float:
    """`steps` AdamW steps of a vision-language method on one batch; the last loss."""
    opt = torch.optim.AdamW(method.parameters(), 3e-3)
    for _ in range(steps):
        loss = method([x], ids, Progress(0, 1, 1, 1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def test_clip_learns_to_pair_captions_with_their_images_and_saves_its_text_tower(tmp_path):
    from dejavu.core.models import load_checkpoint, save_checkpoint
    from dejavu.training.augment import AugmentConfig
    method, x, ids = small_vlm("clip", 64)
    assert method.log_scale.exp().item() == pytest.approx(1 / 0.07)
    views = method.make_views(x, AugmentConfig.from_options(method.augment),
                              torch.Generator().manual_seed(0), slice(0, 64), 64)
    assert len(views) == 1
    first = method(views, ids, Progress(0, 1, 1, 1)).item()
    assert fit(method, x, ids, 80) < 0.5 * first
    save_checkpoint(str(tmp_path / "clip.pt"), method.encoder(), epoch=1)
    loaded, _ = load_checkpoint(str(tmp_path / "clip.pt"))
    method.eval()
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.text(ids), method.model.text(ids))
        torch.testing.assert_close(loaded(x)[1], method.model(x)[1])


class Killed(Exception):
    pass


def test_clip_trains_through_the_training_loop_and_resumes_to_the_same_weights(tmp_path):
    """Captions' token ids are the loop's labels; the text tower and the logit scale are in
    the resume state, so a killed run continues to the uninterrupted run's weights."""
    from dejavu.training.train import TrainConfig, init_model, train
    images, records = synth.generate(synth.CaptionedConfig(records=24, image_size=16, grid=2,
                                                           seed=2))
    ids = text.tokenize(records["caption"].tolist(), 12, 500)
    options = {"context": 12, "buckets": 500, "text_dim": 16, "text_depth": 1,
               "text_heads": 2}
    cfg = TrainConfig(method="clip", loss=options, epochs=3, batch_size=8, warmup_epochs=1,
                      device="cpu", resume_every=1)

    def model():
        return init_model("convnet", [16, 8], 4, 0)

    whole = {}
    train(model(), images, cfg, lambda e, m, *_: whole.update(
        {e: {k: v.clone() for k, v in m.state_dict().items()}}), labels=ids)
    assert any(k.startswith("text.") for k in whole[3])

    def killed_at_3(epoch, m, *_):
        if epoch == 3:
            raise Killed

    with pytest.raises(Killed):
        train(model(), images, cfg, killed_at_3, str(tmp_path / "r"), ids)
    resumed = {}
    train(model(), images, cfg, lambda e, m, *_: resumed.update(
        {e: {k: v.clone() for k, v in m.state_dict().items()}}), str(tmp_path / "r"), ids)
    for name, value in whole[3].items():
        assert torch.equal(value, resumed[3][name]), name


def test_the_sigmoid_loss_is_each_pairs_log_likelihood_and_trains():
    from dejavu.training.methods import siglip
    g = torch.Generator().manual_seed(1)
    image_z, text_z = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    got = siglip.sigmoid_loss(image_z, text_z, torch.tensor(math.log(10.0)),
                              torch.tensor(-10.0)).item()
    i = image_z.double() / image_z.double().norm(dim=1, keepdim=True)
    t = text_z.double() / text_z.double().norm(dim=1, keepdim=True)
    want = 0.0
    for a in range(3):
        for b in range(3):
            z = 1.0 if a == b else -1.0
            logit = 10.0 * float(i[a] @ t[b]) - 10.0
            want -= math.log(1 / (1 + math.exp(-z * logit)))
    assert got == pytest.approx(want / 3, rel=1e-6)
    method, x, ids = small_vlm("siglip", 32)
    assert method.bias.item() == -10.0 and method.log_scale.exp().item() == pytest.approx(10)
    first = method([x], ids, Progress(0, 1, 1, 1)).item()
    assert fit(method, x, ids, 60) < 0.5 * first


def test_the_vlm_training_stage_stopped_at_its_time_limit_continues_to_the_same_models(
        tmp_path):
    """vlm.train.max_runtime shorter than an epoch: each call of the stage trains an epoch,
    keeps its resume state and stops (OutOfTime); the chain of calls saves the tested epochs
    (a checkpoint between 0 and the last among them) equal, bit for bit, to one
    uninterrupted call's."""
    from dejavu.core.deadline import OutOfTime
    from dejavu.core.models import load_checkpoint
    from dejavu.vlm import data, stages
    store, split = str(tmp_path / "store"), str(tmp_path / "split.parquet")
    data.run_synthetic(store, records=60, image_size=16, n_scenes=2, n_objects=6, seed=0)
    data.run_split(f"{store}/records.parquet", split, per_set=12, seed=0)
    settings = dict(subset="A", seed=0, method="clip", backbone="convnet", width=4,
                    projector=[16, 8], image_size=16, epochs=3, batch_size=6, lr=1e-3,
                    weight_decay=0.0, warmup_epochs=1, resume_every=1, device="cpu",
                    loss={"context": 8, "buckets": 100, "text_dim": 8, "text_depth": 1,
                          "text_heads": 2})

    def paths(name):
        (tmp_path / name).mkdir(exist_ok=True)  # as Snakemake makes an output's folder
        return {e: str(tmp_path / name / f"epoch{e}.pt") for e in (0, 2, 3)}

    stages.run_train(store, split, paths("whole"), **settings)
    calls = 0
    while True:
        calls += 1
        try:
            stages.run_train(store, split, paths("stopped"), **settings, max_runtime=1e-9,
                             resume_dir=str(tmp_path / "resume"))
            break
        except OutOfTime:
            assert calls < 3
    assert calls == 3
    for epoch in (0, 2, 3):
        whole = load_checkpoint(paths("whole")[epoch])[0].state_dict()
        stopped = load_checkpoint(paths("stopped")[epoch])[0].state_dict()
        assert any(k.startswith("text.") for k in whole)
        for name, value in whole.items():
            assert torch.equal(value, stopped[name]), (epoch, name)
