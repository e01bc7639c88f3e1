"""RCDM decoder: conditioning, training (resume after a kill), seeded sampling, measures."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO
from dejavu import config as config_check
from dejavu import rcdm

pytestmark = pytest.mark.unit

TINY = rcdm.DecoderConfig(resolution=8, width=8, channel_mult=(1, 2), steps=40,
                          batch_size=16, warmup_steps=5, checkpoint_every=10, device="cpu")


def colour_data(n_per_class: int = 32, side: int = 8, seed: int = 0):
    """Four classes of flat colour images; the conditioning is a noisy one-hot code."""
    rng = np.random.default_rng(seed)
    colours = np.array([[230, 20, 20], [20, 230, 20], [20, 20, 230], [230, 230, 20]])
    labels = np.repeat(np.arange(4), n_per_class)
    images = np.broadcast_to(colours[labels][:, None, None, :], (len(labels), side, side, 3))
    images = np.clip(images + rng.normal(0, 5, images.shape), 0, 255).astype(np.uint8)
    cond = np.eye(4)[labels] * 3 + rng.normal(0, 0.1, (len(labels), 4))
    return images, cond.astype(np.float32), labels, colours


def test_unet_is_conditioned_as_rcdm_does():
    decoder = rcdm.Decoder(6, TINY)
    unet = decoder.unet
    assert unet.config.class_embed_type == "identity"  # added to the timestep embedding
    assert unet.config.resnet_time_scale_shift == "scale_shift"
    resnets = [m for m in unet.modules() if type(m).__name__ == "ResnetBlock2D"]
    assert resnets and all(  # each block maps the embedding to a GroupNorm scale and shift
        r.time_emb_proj.out_features == 2 * r.norm2.num_channels for r in resnets)
    assert decoder.condition.out_features == unet.time_embedding.linear_2.out_features
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([500, 500])
    with torch.no_grad():
        for p in decoder.condition.parameters():
            p.normal_()
        a = decoder(x, t, torch.zeros(2, 6))
        b = decoder(x, t, torch.ones(2, 6))
    assert not torch.allclose(a, b)  # the embedding reaches the output


def test_groups_divide_every_width():
    for width in range(1, 130):
        assert width % rcdm.groups(width) == 0
    assert rcdm.groups(128) == 32


def test_ema_warms_up():
    assert rcdm.ema_decay(0, 0.999) == pytest.approx(0.1)
    assert rcdm.ema_decay(90, 0.999) == pytest.approx(0.91)
    assert rcdm.ema_decay(10**6, 0.999) == 0.999


def test_conditioning_draws_the_conditioned_colour():
    """Known answer: a decoder trained on flat colours draws the colour its code asks for."""
    torch.set_num_threads(2)
    images, cond, labels, colours = colour_data()
    cfg = rcdm.DecoderConfig(resolution=8, width=16, channel_mult=(1, 2), steps=200,
                             batch_size=32, lr=3e-3, warmup_steps=20, schedule="linear",
                             device="cpu")
    decoder, history = rcdm.train_decoder(images, cond, cfg)
    assert history[-1] < history[0] / 2
    codes = np.eye(4, dtype=np.float32) * 3
    drawn = rcdm.sample(decoder, cfg, np.repeat(codes, 4, axis=0), list(range(16)), steps=20)
    mean = drawn.reshape(16, -1, 3).mean(1)
    nearest = np.argmin(((mean[:, None] - colours[None]) ** 2).sum(-1), axis=1)
    assert (nearest == np.repeat(np.arange(4), 4)).mean() >= 0.9


def test_samples_are_seeded_per_image_not_per_batch():
    decoder = rcdm.Decoder(4, TINY).eval()
    cond = np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32)
    whole = rcdm.sample(decoder, TINY, cond, [1, 2, 3, 4], steps=5, batch_size=4)
    pieces = rcdm.sample(decoder, TINY, cond, [1, 2, 3, 4], steps=5, batch_size=1)
    assert np.abs(whole.astype(int) - pieces).max() <= 1
    other = rcdm.sample(decoder, TINY, cond, [5, 6, 7, 8], steps=5, batch_size=4)
    assert np.abs(whole.astype(int) - other).mean() > 10
    assert rcdm.sample_seed(0, "x", 1) != rcdm.sample_seed(0, "x", 2)


def _weights(decoder):
    return {k: v.clone() for k, v in decoder.state_dict().items()}


def test_killed_training_resumes_to_the_same_weights(tmp_path):
    """A decoder job SIGKILLed between two resume states (after step 15; the state of step
    10 is on disk), then rerun, ends with the weights of an uninterrupted run (CPU, fixed
    seed). The job kills itself at that point, so no timing decides where it dies."""
    images, cond, _, _ = colour_data(8)
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "cond.npy", cond)
    cfg = dataclasses.replace(TINY, steps=20, checkpoint_every=5)
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal
        import numpy as np, torch
        from dejavu import rcdm
        from dejavu.core.resume import ResumeState
        save = ResumeState.save

        def save_or_die(self, state):
            if state["step"] == 15:
                os.kill(os.getpid(), signal.SIGKILL)
            save(self, state)

        ResumeState.save = save_or_die
        torch.set_num_threads(1)
        cfg = rcdm.{cfg!r}
        rcdm.train_decoder(np.load({str(tmp_path / 'images.npy')!r}),
                           np.load({str(tmp_path / 'cond.npy')!r}), cfg, {str(tmp_path)!r})
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(script)], env=env, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    state = tmp_path / "decoder-state.pt"
    assert torch.load(state, weights_only=True)["step"] == 10
    torch.set_num_threads(1)
    resumed, _ = rcdm.train_decoder(images, cond, cfg, str(tmp_path))
    assert not state.exists()  # cleared once the run is complete
    whole, _ = rcdm.train_decoder(images, cond, cfg)
    a, b = _weights(resumed), _weights(whole)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_to_a_deadline_stops_at_a_state_and_continues_to_the_same_decoder(
        tmp_path, caplog):
    """A deadline already past: each call trains one step, keeps its state and stops; the
    chain of calls ends with the weights and the loss history of an uninterrupted run."""
    from dejavu.core.deadline import OutOfTime
    images, cond, _, _ = colour_data(8)
    cfg = dataclasses.replace(TINY, steps=20, checkpoint_every=100)
    torch.set_num_threads(1)
    caplog.set_level(logging.INFO, logger="dejavu.core.resume")
    calls = 0
    while True:
        calls += 1
        try:
            resumed, resumed_history = rcdm.train_decoder(images, cond, cfg, str(tmp_path),
                                                          deadline=0.0)
            break
        except OutOfTime as stopped:
            assert f"after decoder step {calls} of 20" in str(stopped)
    assert calls == 20 and not (tmp_path / "decoder-state.pt").exists()
    assert "step 19 (the last attempt stopped at its time limit)" in caplog.text
    whole, history = rcdm.train_decoder(images, cond, cfg)
    assert resumed_history == history and len(history) == 20
    a, b = _weights(resumed), _weights(whole)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="resume directory"):
        rcdm.train_decoder(images, cond, cfg, deadline=0.0)


def test_state_of_other_settings_is_ignored(tmp_path):
    images, cond, _, _ = colour_data(4)
    short = dataclasses.replace(TINY, steps=30, checkpoint_every=10)
    # a state left by a run with other settings
    torch.save({"run_id": "another run", "step": 20}, tmp_path / "decoder-state.pt")
    decoder, history = rcdm.train_decoder(images, cond, short, str(tmp_path))
    assert len(history) > 0


def test_retrieval_ranks_known_answer():
    cond = np.array([[0.0, 0], [10, 0], [0, 10]])
    assert rcdm.retrieval_ranks(cond + 0.1, cond).tolist() == [0, 0, 0]
    # sample 0 lies nearest condition 1: one condition closer than its own
    assert rcdm.retrieval_ranks(np.array([[9.0, 0], [10, 0], [0, 10]]), cond).tolist() == \
        [1, 0, 0]
    # sample 2 lies next to condition 1: conditions 1 and 0 are closer than its own
    assert rcdm.retrieval_ranks(np.array([[0.0, 0], [10, 0], [10, 1]]), cond).tolist() == \
        [0, 0, 2]


def test_mean_embeddings_of_neighbour_rows():
    store_rows = np.array([3, 7, 9])
    emb = np.array([[1.0, 0], [3, 0], [0, 5]])
    got = rcdm.mean_embeddings([np.array([7, 3]), np.array([9])], store_rows, emb)
    assert got.tolist() == [[2.0, 0], [0, 5]]
    with pytest.raises(ValueError, match="not in the public"):
        rcdm.mean_embeddings([np.array([4])], store_rows, emb)


def test_attacked_examples_groups_the_targets_top_p(tmp_path):
    n = 10
    ids = [f"x{i}" for i in range(n)]
    base = pd.DataFrame({"id": ids, "row": range(n), "crop_row": range(n), "label": 0,
                         "set": "A", "neighbors": [np.array([i]) for i in range(n)]})
    # target: confidence falls with i; right on 0-5
    target = base.assign(confidence=-np.arange(n, dtype=float), mean_distance=1.0,
                         correct=np.arange(n) < 6, prediction=0)
    # reference: right on the even images
    reference = base.assign(confidence=0.0, mean_distance=1.0,
                            correct=np.arange(n) % 2 == 0, prediction=0)
    other = base.assign(set="B", id=[f"y{i}" for i in range(n)], confidence=0.0,
                        mean_distance=1.0, correct=True, prediction=0)
    target = pd.concat([target, other])
    target.to_parquet(tmp_path / "t.parquet")
    reference.to_parquet(tmp_path / "r.parquet")
    got = rcdm.attacked_examples(str(tmp_path / "t.parquet"), str(tmp_path / "r.parquet"),
                                 "A", p=0.5, examples=2)
    # top half: x0..x4; memorized (T right, R wrong): x1, x3; correlated: x0, x2 (x4 cut)
    assert got[["id", "group"]].values.tolist() == [
        ["x1", "memorized"], ["x3", "memorized"], ["x0", "correlated"], ["x2", "correlated"]]


def test_config_names_bad_rcdm_keys():
    import yaml
    cfg = yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "..", "config.yaml")))
    config_check.validate(cfg, os.path.join(os.path.dirname(__file__), "..", "workflow", "schemas",
                               "config.schema.yaml"))
    cfg["knn"]["embeddings"] = ["backbone"]
    cfg["rcdm"].update(resolution=18, channel_mult=[1, 2, 2], warmup_steps=10**6)
    with pytest.raises(config_check.ConfigError) as err:
        config_check.check(cfg)
    text = str(err.value)
    assert "rcdm.embedding" in text and "rcdm.resolution" in text and "rcdm.warmup_steps" in text


def test_a_decoder_of_another_model_is_refused(tmp_path):
    from dejavu.core.store import file_digest
    ours, theirs = tmp_path / "ours.pt", tmp_path / "theirs.pt"
    ours.write_bytes(b"checkpoint of model A")
    theirs.write_bytes(b"checkpoint of model B")
    decoder = rcdm.Decoder(4, TINY)
    rcdm.save_decoder(str(tmp_path / "decoder.pt"), decoder, TINY,
                      checkpoint_sha256=file_digest(str(ours)))
    loaded, cfg = rcdm.load_decoder_of(str(tmp_path / "decoder.pt"), str(ours), "cpu")
    assert cfg == dataclasses.replace(TINY, device="auto")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                 decoder.state_dict().values()))
    with pytest.raises(ValueError, match="another model"):
        rcdm.load_decoder_of(str(tmp_path / "decoder.pt"), str(theirs), "cpu")
