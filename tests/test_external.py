"""Loading weights trained elsewhere into dejavu checkpoints (dejavu.training.external)."""

import copy
import sys

import pytest
import torch
from torch import nn

from dejavu.training.external import load_external, run, split_parts, strip_prefix, unwrap
from dejavu.core.models import SSLModel, load_checkpoint, save_checkpoint
from dejavu.core.store import file_digest

pytestmark = pytest.mark.unit

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def images(n=3, side=32, seed=0):
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def embeddings(model, x):
    return model.eval()(x)


def randomise_bn(model: nn.Module, seed=1):
    """Non-trivial running statistics, so a test sees whether they were loaded."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


@pytest.fixture(scope="module")
def resnet18():
    import torchvision
    torch.manual_seed(0)
    return randomise_bn(torchvision.models.resnet18(weights=None).eval())


@pytest.fixture
def dejavu_ckpt(tmp_path):
    torch.manual_seed(0)
    model = randomise_bn(SSLModel("convnet", [32, 16], width=4))
    path = tmp_path / "dejavu.pt"
    save_checkpoint(str(path), model, epoch=7)
    return path


def test_dejavu_checkpoint_round_trip_is_bit_identical(dejavu_ckpt, tmp_path):
    out = tmp_path / "converted.pt"
    run(str(dejavu_ckpt), str(out), architecture="convnet", projector=[32, 16], width=4,
        epoch=7)
    reference, _ = load_checkpoint(str(dejavu_ckpt))
    converted, ckpt = load_checkpoint(str(out))
    assert ckpt["epoch"] == 7 and ckpt["source"] == str(dejavu_ckpt)
    assert ckpt["source_sha256"] == file_digest(str(dejavu_ckpt))
    assert converted.arch == reference.arch
    x = images()
    for got, want in zip(embeddings(converted, x), embeddings(reference, x)):
        assert torch.equal(got, want)


def test_torchvision_state_dict_drops_head_and_gives_penultimate_features(
        resnet18, tmp_path, caplog):
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18.state_dict(), path)
    with caplog.at_level("INFO", logger="dejavu"):
        model = load_external(str(path), "torchvision.resnet18")
    assert "dropped classifier head: fc.weight, fc.bias" in caplog.text
    assert model.arch["normalize"] == "imagenet" and model.backbone.out_dim == 512
    x = images()
    h, z = embeddings(model, x)
    headless = copy.deepcopy(resnet18)
    headless.fc = nn.Identity()
    with torch.no_grad():
        want = headless((x - IMAGENET_MEAN) / IMAGENET_STD)
    assert h.shape == (3, 512)
    torch.testing.assert_close(h, want, rtol=0, atol=1e-6)
    assert torch.equal(z, h)  # no projector: the projector embedding is the backbone's


def test_torchvision_head_inside_sequential():
    model = SSLModel("torchvision.mobilenet_v3_small", [])
    # classifier = Linear(576, 1024), Hardswish, Dropout, Linear(1024, 1000): last one goes
    assert model.backbone.out_dim == 1024
    assert model.backbone.head_keys == ["classifier.3.weight", "classifier.3.bias"]
    assert "classifier.0.weight" in model.backbone.state_dict()


@pytest.mark.parametrize("wrap", [lambda sd: {f"module.{k}": v for k, v in sd.items()},
                                  lambda sd: {"model": sd, "epoch": 3},
                                  lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()},
                                              "optimizer": {"lr": 0.1}}],
                         ids=["ddp", "model-key", "both"])
def test_wrapped_and_prefixed_state_dicts_load(resnet18, tmp_path, wrap):
    path = tmp_path / "wrapped.pt"
    torch.save(wrap(resnet18.state_dict()), path)
    model = load_external(str(path), "torchvision.resnet18")
    assert torch.equal(model.backbone.layer1[0].conv1.weight, resnet18.layer1[0].conv1.weight)


def test_unwrap_and_prefix_rules():
    w = torch.zeros(1)
    assert unwrap({"arch": {"x": 1}, "state_dict": {"a": w}, "epoch": 2}) == {"a": w}
    assert unwrap({"teacher": {"a": w}, "student": {"b": w}}) == {"a": w}
    assert unwrap({"ema": {"a": w}, "model": {"b": w}}, key="ema") == {"a": w}
    with pytest.raises(ValueError, match=r"no key 'ema'.*\['model'\]"):
        unwrap({"model": {"b": w}}, key="ema")
    with pytest.raises(ValueError, match=r"no state dict found.*\['epoch', 'weights'\]"):
        unwrap({"weights": {"a": w}, "epoch": 1})
    assert strip_prefix({"module.a": w, "module.b": w}) == {"a": w, "b": w}
    assert strip_prefix({"module.a": w, "b": w}) == {"module.a": w, "b": w}  # not all
    assert strip_prefix({"enc.a": w, "b": w}, "enc.") == {"a": w, "b": w}
    with pytest.raises(ValueError, match="no key starts with prefix 'x.'"):
        strip_prefix({"a": w}, "x.")
    assert split_parts({"backbone.a": w, "projector.0.weight": w, "queue": w}) == (
        {"a": w}, {"0.weight": w}, {"queue": w})
    assert split_parts({"conv.weight": w}) == ({"conv.weight": w}, {}, {})


def test_missing_and_extra_keys_are_listed(dejavu_ckpt, tmp_path):
    ckpt = torch.load(dejavu_ckpt, weights_only=True)
    sd = ckpt["state_dict"]
    del sd["backbone.features.0.1.weight"]
    sd["backbone.extra.weight"] = torch.zeros(2)
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not fit architecture convnet") as e:
        load_external(str(tmp_path / "bad.pt"), "convnet", [32, 16], width=4)
    assert "missing keys [backbone.features.0.1.weight]" in str(e.value)
    assert "unexpected keys [backbone.extra.weight]" in str(e.value)


def test_wrong_projector_dims_name_key_and_both_shapes(dejavu_ckpt):
    with pytest.raises(ValueError,
                       match=r"projector\.3\.weight: checkpoint \(16, 32\) vs model \(8, 32\)"):
        load_external(str(dejavu_ckpt), "convnet", [32, 8], width=4)


def test_projector_presence_must_match(dejavu_ckpt, resnet18, tmp_path):
    with pytest.raises(ValueError, match=r"unexpected keys \[projector\.0\.weight.*"
                                         r"Linear outputs \[32, 16\]\): set the projector"):
        load_external(str(dejavu_ckpt), "convnet", None, width=4)
    torch.save(resnet18.state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match=r"missing keys \[projector\.0\.weight"):
        load_external(str(tmp_path / "r18.pth"), "torchvision.resnet18", [64])


class Custom:
    pass


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"state_dict": {}, "hook": Custom()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="holds Python objects beyond tensors and is not "
                                         "loaded"):
        load_external(str(tmp_path / "evil.pt"), "convnet", width=4)


def test_old_arch_dicts_without_normalize_load_unchanged(tmp_path):
    torch.manual_seed(0)
    model = SSLModel("convnet", [16, 8], width=4)
    assert "normalize" not in model.arch  # default arch dicts stay as they were
    arch = dict(model.arch)
    torch.save({"arch": arch, "state_dict": model.state_dict(), "epoch": 0},
               tmp_path / "old.pt")
    loaded, _ = load_checkpoint(str(tmp_path / "old.pt"))
    x = images()
    want = model.eval().backbone((x - 0.5) / 0.25)
    assert torch.equal(embeddings(loaded, x)[0], want)


def test_imagenet_normalisation_is_saved_and_used(resnet18, tmp_path):
    torch.save(resnet18.state_dict(), tmp_path / "r18.pth")
    run(str(tmp_path / "r18.pth"), str(tmp_path / "out.pt"),
        architecture="torchvision.resnet18", epoch=0)
    loaded, _ = load_checkpoint(str(tmp_path / "out.pt"))
    assert loaded.arch["normalize"] == "imagenet" and loaded.projector_dim == 512
    direct = load_external(str(tmp_path / "r18.pth"), "torchvision.resnet18")
    x = images()
    assert torch.equal(embeddings(loaded, x)[0], embeddings(direct, x)[0])
    dejavu_norm = load_external(str(tmp_path / "r18.pth"), "torchvision.resnet18",
                                normalize="dejavu")
    assert not torch.allclose(embeddings(dejavu_norm, x)[0], embeddings(direct, x)[0])


def test_timm_model_loads_without_classifier(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    full = randomise_bn(timm.create_model("resnet10t", pretrained=False).eval())
    torch.save(full.state_dict(), tmp_path / "timm.pth")
    model = load_external(str(tmp_path / "timm.pth"), "timm.resnet10t")
    assert model.backbone.head_keys == ["fc.weight", "fc.bias"]
    reference = timm.create_model("resnet10t", pretrained=False, num_classes=0).eval()
    reference.load_state_dict({k: v for k, v in full.state_dict().items()
                               if not k.startswith("fc.")})
    x = images()
    with torch.no_grad():
        want = reference((x - IMAGENET_MEAN) / IMAGENET_STD)
    h, _ = embeddings(model, x)
    assert h.shape == want.shape == (3, model.backbone.out_dim)
    torch.testing.assert_close(h, want, rtol=0, atol=1e-6)


def test_unknown_backbone_names_both_families():
    with pytest.raises(ValueError, match="torchvision.<name> or timm.<name>"):
        SSLModel("resnet7", [])


def test_timm_backbone_without_timm_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm fails
    with pytest.raises(ImportError, match="pip install timm"):
        SSLModel("timm.resnet10t", [])


def test_safetensors_file_loads(dejavu_ckpt, tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    weights = torch.load(dejavu_ckpt, weights_only=True)["state_dict"]
    safetensors_torch.save_file(weights, str(tmp_path / "m.safetensors"))
    model = load_external(str(tmp_path / "m.safetensors"), "convnet", [32, 16], width=4)
    reference, _ = load_checkpoint(str(dejavu_ckpt))
    x = images()
    assert torch.equal(embeddings(model, x)[1], embeddings(reference, x)[1])


def test_command_line_imports_a_checkpoint_or_names_what_does_not_fit(dejavu_ckpt, tmp_path,
                                                                       capsys):
    from dejavu.__main__ import main
    path = dejavu_ckpt
    out = tmp_path / "imported.pt"
    main(["import-model", str(path), str(out), "--architecture", "convnet", "--width", "4",
          "--projector", "32", "16"])
    assert "loads as convnet" in capsys.readouterr().out
    assert load_checkpoint(str(out))[0].arch["projector_dims"] == [32, 16]
    with pytest.raises(ValueError, match="unexpected keys"):
        main(["import-model", str(path), str(out), "--architecture", "convnet", "--width", "4"])
