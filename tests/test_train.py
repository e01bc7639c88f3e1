import numpy as np
import pytest
import torch

from dejavu.train import TrainConfig, init_model, lr_at, run_seed, train


def images(n=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8)


def small_model(seed=0):
    return init_model("convnet", [16, 8], 4, seed)


def test_training_is_reproducible_bit_for_bit_on_cpu():
    cfg = TrainConfig(epochs=2, batch_size=8, warmup_epochs=1, seed=3, device="cpu")
    saved = {}
    a, b = small_model(), small_model()
    train(a, images(), cfg, lambda e, m: saved.setdefault(e, True))
    train(b, images(), cfg, lambda e, m: None)
    assert saved == {2: True}
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    c = small_model()
    train(c, images(), TrainConfig(epochs=2, batch_size=8, warmup_epochs=1, seed=4,
                                   device="cpu"), lambda e, m: None)
    assert not torch.equal(a.projector[0].weight, c.projector[0].weight)


def test_checkpoints_at_requested_epochs():
    saved = []
    train(small_model(), images(), TrainConfig(epochs=3, checkpoints=(1,), batch_size=8,
                                               device="cpu"),
          lambda e, m: saved.append(e))
    assert saved == [1, 3]


def test_models_a_and_b_start_from_different_weights():
    a, b = small_model(run_seed(0, "A")), small_model(run_seed(0, "B"))
    assert not torch.equal(a.projector[0].weight, b.projector[0].weight)


def test_nan_loss_stops_with_epoch_and_step():
    cfg = TrainConfig(epochs=1, batch_size=8, loss={"std_coeff": float("nan")}, device="cpu")
    with pytest.raises(FloatingPointError, match="epoch 1, step 0"):
        train(small_model(), images(), cfg, lambda e, m: None)


def test_unknown_method_and_tiny_batch_fail_before_training():
    with pytest.raises(ValueError, match="unknown method"):
        train(small_model(), images(), TrainConfig(method="mae", device="cpu"), lambda e, m: None)
    with pytest.raises(ValueError, match="at least 2"):
        train(small_model(), images(n=1), TrainConfig(device="cpu"), lambda e, m: None)


def test_learning_rate_schedule():
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(99, 100, 10, 1.0) < 0.01


class Killed(Exception):
    pass


def test_killed_training_resumes_to_the_same_weights(tmp_path):
    cfg = TrainConfig(epochs=5, checkpoints=(2, 4), batch_size=8, warmup_epochs=1, seed=3,
                      device="cpu", resume_every=1)
    whole, saved_whole = small_model(), {}
    train(whole, images(), cfg, lambda e, m: saved_whole.update({e: copy_state(m)}))

    def killed_at_4(epoch, model):
        if epoch == 4:
            raise Killed  # the state of epoch 3 and the epoch-2 checkpoint are on disk

    with pytest.raises(Killed):
        train(small_model(), images(), cfg, killed_at_4, resume_dir=str(tmp_path / "r"))
    saved = {}
    train(small_model(), images(), cfg, lambda e, m: saved.update({e: copy_state(m)}),
          resume_dir=str(tmp_path / "r"))
    assert sorted(saved) == [2, 4, 5]  # epoch 2 re-emitted from the kept copy
    for epoch in (2, 4, 5):
        for name, value in saved_whole[epoch].items():
            assert torch.equal(value, saved[epoch][name]), (epoch, name)
    assert not (tmp_path / "r").exists()  # cleared after a finished run


def test_resume_state_of_other_settings_is_ignored(tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=8, seed=3, device="cpu", resume_every=1)
    with pytest.raises(Killed):
        train(small_model(), images(), cfg, _raise, resume_dir=str(tmp_path / "r"))
    other = TrainConfig(epochs=3, batch_size=8, seed=3, device="cpu", resume_every=1, lr=0.01)
    a, b = small_model(), small_model()
    train(a, images(), other, lambda e, m: None, resume_dir=str(tmp_path / "r"))
    train(b, images(), other, lambda e, m: None)
    assert torch.equal(a.projector[0].weight, b.projector[0].weight)


def _raise(epoch, model):
    raise Killed


def copy_state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", ["vicreg", "simclr", "barlow_twins"])
def test_every_method_trains_and_lowers_its_loss(method):
    from dejavu.synth import SynthConfig, generate
    data, _ = generate(SynthConfig(n_classes=8, images_per_class=8, image_size=16))
    history = train(init_model("convnet", [64, 64], 8, 0), data,
                    TrainConfig(method=method, epochs=20, batch_size=32, lr=3e-3,
                                warmup_epochs=2, device="cpu"), lambda e, m: None)
    assert all(np.isfinite(history))
    assert np.mean(history[-5:]) < np.mean(history[:5]), history


@pytest.mark.parametrize("backbone, dim", [("resnet18", 512), ("resnet50", 2048)])
def test_resnet_backbones_embed_small_images(backbone, dim, tmp_path):
    from dejavu.models import load_checkpoint, save_checkpoint
    model = init_model(backbone, [32, 16], 16, 0, small_stem=True).eval()
    with torch.no_grad():
        h, z = model(torch.rand(2, 3, 32, 32))
    assert h.shape == (2, dim) and z.shape == (2, 16)
    # the small stem keeps 32 px inputs at full resolution through the first stage
    assert model.backbone.net.conv1.stride == (1, 1)
    save_checkpoint(str(tmp_path / "m.pt"), model, epoch=0)
    loaded, _ = load_checkpoint(str(tmp_path / "m.pt"))
    assert loaded.arch["backbone"] == backbone and loaded.arch["small_stem"]


def test_unknown_backbone_is_refused():
    with pytest.raises(ValueError, match="unknown backbone"):
        init_model("vgg", [8], 4, 0)
