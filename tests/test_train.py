import copy
import dataclasses

import numpy as np
import pytest
import torch

from dejavu.training.train import (SaveTo, TrainConfig, init_model, run_seed, train,
                          train_processes)

pytestmark = pytest.mark.unit


def images(n=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8)


def small_model(seed=0, method=""):
    """A small ConvNet with a projector, or for MAE the small ViT without one."""
    if method == "mae":
        return init_model("vit_mini", [], 0, seed, image_size=16, patch_size=4)
    return init_model("convnet", [16, 8], 4, seed)


MAE_OPTIONS = {"decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2}


def test_training_is_reproducible_bit_for_bit_on_cpu():
    cfg = TrainConfig(epochs=2, batch_size=8, warmup_epochs=1, seed=3, device="cpu")
    saved = {}
    a, b = small_model(), small_model()
    train(a, images(), cfg, lambda e, m, *_: saved.setdefault(e, True))
    train(b, images(), cfg, lambda e, m, *_: None)
    assert saved == {2: True}
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    c = small_model()
    train(c, images(), TrainConfig(epochs=2, batch_size=8, warmup_epochs=1, seed=4,
                                   device="cpu"), lambda e, m, *_: None)
    assert not torch.equal(a.projector[0].weight, c.projector[0].weight)


def test_checkpoints_at_requested_epochs():
    saved = []
    train(small_model(), images(), TrainConfig(epochs=3, checkpoints=(1,), batch_size=8,
                                               device="cpu"),
          lambda e, m, *_: saved.append(e))
    assert saved == [1, 3]


def test_models_a_and_b_start_from_different_weights():
    a, b = small_model(run_seed(0, "A")), small_model(run_seed(0, "B"))
    assert not torch.equal(a.projector[0].weight, b.projector[0].weight)


def test_nan_loss_stops_with_epoch_and_step_keeping_the_last_good_weights(tmp_path):
    from dejavu.training.methods import METHODS, TwoViewMethod
    from dejavu.core.models import load_checkpoint

    class NaNAtStep5(TwoViewMethod):  # a loss that breaks at overall step 5 (0-based)
        name, options, calls, weights = "nan_at_5", {}, 0, None

        def objective(self, z_a, z_b):
            NaNAtStep5.calls += 1
            loss = (z_a - z_b).pow(2).mean()
            if NaNAtStep5.calls == 6:
                NaNAtStep5.weights = copy_state(self.model)  # after 5 good steps
                return loss * float("nan")
            return loss

    METHODS["nan_at_5"] = NaNAtStep5
    try:
        cfg = TrainConfig(method="nan_at_5", epochs=4, batch_size=8, device="cpu",
                          resume_every=1)  # 24 images: 3 steps per epoch
        with pytest.raises(FloatingPointError, match=r"epoch 2, step 2 \(step 5 overall\)"):
            train(small_model(), images(), cfg, lambda e, m, *_: None,
                  resume_dir=str(tmp_path / "resume"))
    finally:
        METHODS.pop("nan_at_5")
    kept, ckpt = load_checkpoint(str(tmp_path / "resume" / "last-good-epoch2-step2.pt"))
    assert (ckpt["epoch"], ckpt["step"]) == (2, 2)
    for name, value in NaNAtStep5.weights.items():
        assert torch.equal(value, kept.state_dict()[name]), name
    assert (tmp_path / "resume" / "state.pt").exists()  # the epoch-1 resume state stays


def test_unknown_method_and_tiny_batch_fail_before_training():
    with pytest.raises(ValueError, match="unknown method"):
        train(small_model(), images(), TrainConfig(method="ijepa", device="cpu"), lambda e, m, *_: None)
    with pytest.raises(ValueError, match="at least 2"):
        train(small_model(), images(n=1), TrainConfig(device="cpu"), lambda e, m, *_: None)


class Killed(Exception):
    pass


def test_killed_training_resumes_to_the_same_weights(tmp_path):
    cfg = TrainConfig(epochs=5, checkpoints=(2, 4), batch_size=8, warmup_epochs=1, seed=3,
                      device="cpu", resume_every=1)
    whole, saved_whole = small_model(), {}
    train(whole, images(), cfg, lambda e, m, *_: saved_whole.update({e: copy_state(m)}))

    def killed_at_4(epoch, model, *_):
        if epoch == 4:
            raise Killed  # the state of epoch 3 and the epoch-2 checkpoint are on disk

    with pytest.raises(Killed):
        train(small_model(), images(), cfg, killed_at_4, resume_dir=str(tmp_path / "r"))
    saved = {}
    train(small_model(), images(), cfg, lambda e, m, *_: saved.update({e: copy_state(m)}),
          resume_dir=str(tmp_path / "r"))
    assert sorted(saved) == [2, 4, 5]  # epoch 2 re-emitted from the kept copy
    for epoch in (2, 4, 5):
        for name, value in saved_whole[epoch].items():
            assert torch.equal(value, saved[epoch][name]), (epoch, name)
    assert not (tmp_path / "r").exists()  # cleared after a finished run


def test_training_to_a_deadline_stops_at_a_state_and_continues_to_the_same_weights(
        tmp_path):
    """A deadline already past: each call trains one epoch, keeps its state and stops; the
    chain of calls reaches the uninterrupted run's checkpoints (resume_every plays no
    part: the state is kept at every stop)."""
    from dejavu.core.deadline import OutOfTime
    cfg = TrainConfig(epochs=3, checkpoints=(1,), batch_size=8, warmup_epochs=1, seed=3,
                      device="cpu", resume_every=100)
    whole = {}
    train(small_model(), images(), cfg, lambda e, m, *_: whole.update({e: copy_state(m)}))
    saved, calls = {}, 0
    while True:
        calls += 1
        try:
            train(small_model(), images(), cfg,
                  lambda e, m, *_: saved.update({e: copy_state(m)}),
                  resume_dir=str(tmp_path / "r"), deadline=0.0)
            break
        except OutOfTime as stopped:
            assert f"after epoch {calls} of 3" in str(stopped)
    assert calls == 3 and sorted(saved) == [1, 3]
    for epoch in (1, 3):
        for name, value in whole[epoch].items():
            assert torch.equal(value, saved[epoch][name]), (epoch, name)
    with pytest.raises(ValueError, match="resume directory"):
        train(small_model(), images(), cfg, _raise, deadline=0.0)


def test_resume_state_of_other_settings_is_ignored(tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=8, seed=3, device="cpu", resume_every=1)
    with pytest.raises(Killed):
        train(small_model(), images(), cfg, _raise, resume_dir=str(tmp_path / "r"))
    other = TrainConfig(epochs=3, batch_size=8, seed=3, device="cpu", resume_every=1, lr=0.01)
    a, b = small_model(), small_model()
    train(a, images(), other, lambda e, m, *_: None, resume_dir=str(tmp_path / "r"))
    train(b, images(), other, lambda e, m, *_: None)
    assert torch.equal(a.projector[0].weight, b.projector[0].weight)


def _raise(epoch, model, *_):
    raise Killed


def copy_state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", ["vicreg", "simclr", "barlow_twins"])
def test_every_method_trains_and_lowers_its_loss(method):
    from dejavu.data.synth import SynthConfig, generate
    data, _ = generate(SynthConfig(n_classes=8, images_per_class=8, image_size=16))
    history = train(init_model("convnet", [64, 64], 8, 0), data,
                    TrainConfig(method=method, epochs=20, batch_size=32, lr=3e-3,
                                warmup_epochs=2, device="cpu"), lambda e, m, *_: None)
    assert all(np.isfinite(history))
    assert np.mean(history[-5:]) < np.mean(history[:5]), history


@pytest.mark.parametrize("backbone, dim", [("resnet18", 512), ("resnet50", 2048)])
def test_resnet_backbones_embed_small_images(backbone, dim, tmp_path):
    from dejavu.core.models import load_checkpoint, save_checkpoint
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



def labelled(n_classes=4, per_class=6, side=16):
    from dejavu.data.synth import SynthConfig, generate
    data, index = generate(SynthConfig(n_classes=n_classes, images_per_class=per_class,
                                       image_size=side))
    return data, index["label"].to_numpy()


METHOD_CASES = [
    ("vicreg", {}), ("simclr", {}), ("barlow_twins", {}), ("byol", {"predictor_hidden": 16}),
    ("dino", {"prototypes": 16, "local_crops": 2, "warmup_teacher_temp_epochs": 2}),
    ("supervised", {}), ("mae", MAE_OPTIONS),
]


@pytest.mark.parametrize("method, options", METHOD_CASES)
def test_every_method_resumes_to_the_same_weights(method, options, tmp_path):
    """Teachers, predictors, centres and classifiers are part of the resume state."""
    data, labels = labelled()
    cfg = TrainConfig(method=method, loss=options, epochs=3, batch_size=8, warmup_epochs=1,
                      classes=4, device="cpu", resume_every=1)
    whole = {}
    train(small_model(method=method), data, cfg,
          lambda e, m, *_: whole.update({e: copy_state(m)}), labels=labels)

    def killed_at_3(epoch, model, *_):
        if epoch == 3:
            raise Killed

    with pytest.raises(Killed):
        train(small_model(method=method), data, cfg, killed_at_3, str(tmp_path / "r"), labels)
    resumed = {}
    train(small_model(method=method), data, cfg,
          lambda e, m, *_: resumed.update({e: copy_state(m)}), str(tmp_path / "r"), labels)
    for name, value in whole[3].items():
        assert torch.equal(value, resumed[3][name]), name


DDP_CASES = {"vicreg": {}, "byol": {"predictor_hidden": 16},
             "dino": {"prototypes": 16, "local_crops": 1}, "supervised": {},
             "mae": MAE_OPTIONS,
             "clip": {"context": 8, "buckets": 50, "text_dim": 16, "text_depth": 1,
                      "text_heads": 2}}


def labels_for(method: str, labels):
    """What a method trains on besides the images: a CLIP-style method's captions' token
    ids (a caption per image, naming its class), the class labels otherwise."""
    if method != "clip":
        return labels
    from dejavu.core.text import tokenize
    return tokenize([f"a picture of thing {label} number {i % 3}"
                     for i, label in enumerate(labels)], 8, 50)


def ddp_config(method):
    return TrainConfig(method=method, loss=DDP_CASES[method], epochs=2, batch_size=12,
                       warmup_epochs=1, optimizer="sgd", lr=0.05, classes=4, device="cpu")


def _two_processes(rank, size, port, paths):
    """One of two gloo processes training every DDP case in turn (spawned once for all:
    a spawn costs seconds of start-up)."""
    from dejavu.training import distributed
    torch.set_num_threads(1)
    distributed.init(rank, size, port, torch.device("cpu"))
    try:
        assert distributed.from_rank0(lambda: rank) == 0  # rank 0's answer, on every rank
        data, labels = labelled()
        for method, path in paths.items():
            train(small_model(method=method), data, ddp_config(method), SaveTo({2: path}),
                  labels=labels_for(method, labels))
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    from dejavu.training import distributed
    root = tmp_path_factory.mktemp("ddp")
    paths = {method: str(root / f"{method}.pt") for method in DDP_CASES}
    torch.multiprocessing.spawn(_two_processes, nprocs=2, join=True,
                                args=(2, distributed.free_port(), paths))
    return paths


@pytest.mark.parametrize("method", DDP_CASES)
def test_two_data_parallel_processes_equal_one_with_the_whole_batch(method, two_process_runs,
                                                                    tmp_path):
    """DDP over two gloo processes (6 images each) against one process with batch 12
    (`train_processes` itself, spawning: tests/test_loader.py and the workflow's own-method
    test). SGD: its update is proportional to the gradient, so float rounding stays
    rounding (Adam would turn rounding noise in parameters without gradient, like a bias
    before BatchNorm, into steps of size lr). CLIP's loss gathers both processes'
    embeddings, so its pairs span the whole batch, as the VLM training relies on."""
    data, labels = labelled()
    path = str(tmp_path / "one.pt")
    train_processes(1, small_model(method=method), data, ddp_config(method), SaveTo({2: path}),
                    labels=labels_for(method, labels))
    one = torch.load(path, weights_only=True)["state_dict"]
    two = torch.load(two_process_runs[method], weights_only=True)["state_dict"]
    start = small_model(method=method).state_dict()
    moved = max((one[k].double() - start[k].double()).abs().max().item()
                for k in start)      # the image tower's (CLIP's text tower starts in training)
    apart = max((one[k].double() - two[k].double()).abs().max().item() for k in one)
    assert moved > 1e-2              # training changed the weights...
    assert apart < 1e-3 * moved      # ...and both runs changed them alike


def test_vit_backbone_takes_other_input_sizes_and_checks_its_patch():
    from dejavu.core.models import SSLModel
    model = init_model("vit_tiny", [32, 16], 0, 0, image_size=16, patch_size=4).eval()
    with torch.no_grad():
        h, z = model(torch.rand(2, 3, 16, 16))
        h_small, _ = model(torch.rand(2, 3, 8, 8))  # a multi-crop view: positions resampled
    assert h.shape == (2, 192) and z.shape == (2, 16) and h_small.shape == (2, 192)
    with pytest.raises(ValueError, match="patch size"):
        SSLModel("vit_small", [8], image_size=30, patch_size=4)


@pytest.mark.parametrize("method, options", [("vicreg", {}), ("dino", {"prototypes": 16}),
                                             ("supervised", {})])
def test_an_epoch_continued_from_a_saved_state_equals_the_uninterrupted_run(
        method, options, tmp_path):
    """How an epoch sweep adds an epoch: the train stage saved states at 2 and 4 (of 5);
    epoch 3 continues from the state at 2 with the run's schedule and must be the weights
    an uninterrupted run has at epoch 3."""
    data, labels = labelled()
    cfg = TrainConfig(method=method, loss=options, epochs=5, checkpoints=(2, 3, 4),
                      batch_size=8, warmup_epochs=1, classes=4, device="cpu")
    whole = {}
    train(small_model(), data, cfg, lambda e, m, s: whole.update({e: copy_state(m)}),
          labels=labels)
    stages = dataclasses.replace(cfg, checkpoints=(2, 4))
    saved = {}  # the state holds live tensors: a callback saves or copies it
    train(small_model(), data, stages, lambda e, m, s: saved.update({e: copy.deepcopy(s)}),
          labels=labels)
    continued = {}
    for epoch, start in ((3, 2), (5, 4)):
        train(small_model(), data, dataclasses.replace(cfg, checkpoints=(), until=epoch),
              lambda e, m, s: continued.update({e: copy_state(m)}), labels=labels,
              start=saved[start])
    for epoch in (3, 5):
        for name, value in whole[epoch].items():
            assert torch.equal(value, continued[epoch][name]), (epoch, name)
    other = dataclasses.replace(cfg, lr=cfg.lr * 2, until=3)
    with pytest.raises(ValueError, match="other settings"):
        train(small_model(), data, other, lambda *_: None, labels=labels, start=saved[2])


def test_state_epochs_and_where_a_checkpoint_starts():
    from dejavu.core.epochs import start_state, state_epochs
    assert state_epochs(400, 50) == [50, 100, 150, 200, 250, 300, 350, 400]
    assert state_epochs(10, 4) == [4, 8, 10]
    assert [start_state(e, 10, 4) for e in (1, 4, 7, 9, 10)] == [0, 4, 4, 8, 10]
