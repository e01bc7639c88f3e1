"""Encoders: a backbone (the representation used downstream) and a projector head.

`SSLModel.forward` takes images in [0, 1] and returns both embeddings, so embedding, k-NN
and training all see the same input normalisation.

Besides dejavu's own backbones, any torchvision classifier (`torchvision.<name>`) or timm
model (`timm.<name>`, optional dependency) can be the backbone, built randomly initialised
and without its classifier; `dejavu.training.external` loads someone else's weights into it.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from . import gpus, layers
from .vit import VIT_SIZES, ViT

log = logging.getLogger(__name__)

# Inputs are scaled to [0, 1] and then centred with these; fixed so a checkpoint needs no
# dataset statistics to be used.
INPUT_MEAN, INPUT_STD = 0.5, 0.25
# Per-channel statistics of ImageNet, which torchvision and timm models are trained with.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
NORMALIZATIONS = ("dejavu", "imagenet")


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.MaxPool2d(2, ceil_mode=True))  # ceil: small multi-crop views


class ConvNet(nn.Module):
    """Small CPU-friendly ConvNet (definitions §8): `depth` conv blocks of width width·2^i, BatchNorm,
    max-pool, then global average pooling."""

    def __init__(self, width: int = 16, depth: int = 4):
        super().__init__()
        widths = [width * 2**i for i in range(depth)]
        self.features = nn.Sequential(*(conv_block(c_in, c_out)
                                        for c_in, c_out in zip([3] + widths[:-1], widths)))
        self.out_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def projector(in_dim: int, dims: list[int]) -> nn.Sequential:
    """MLP head: Linear-BN-ReLU for every layer but the last, which is a bare Linear."""
    layers: list[nn.Module] = []
    for i, d in enumerate(dims):
        layers.append(nn.Linear(in_dim, d, bias=i == len(dims) - 1))
        if i < len(dims) - 1:
            layers += [nn.BatchNorm1d(d), nn.ReLU(inplace=True)]
        in_dim = d
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """A torchvision ResNet without its classifier, randomly initialised (no weights are
    downloaded). `small_stem` swaps the 7x7/2 convolution and max-pool for one 3x3/1
    convolution, the usual choice for images of 64 px and below (CIFAR-style)."""

    def __init__(self, depth: int, small_stem: bool = False):
        super().__init__()
        import torchvision
        net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        if small_stem:
            net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        self.out_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


BACKBONES = {
    "convnet": lambda width, small_stem, image_size, patch_size, pool: ConvNet(width=width),
    **{f"resnet{d}": (lambda width, small_stem, image_size, patch_size, pool, d=d:
                      ResNet(d, small_stem))
       for d in (18, 34, 50, 101)},
    **{name: (lambda width, small_stem, image_size, patch_size, pool, size=size:
              ViT(image_size, patch_size, *size, pool=pool))
       for name, size in VIT_SIZES.items()},
}


HEAD_ATTRIBUTES = ("fc", "heads", "classifier", "head")


def remove_classifier(net: nn.Module, name: str) -> tuple[int, list[str]]:
    """Replace the last nn.Linear of a torchvision classifier's head (the first of
    HEAD_ATTRIBUTES the model has) with nn.Identity, in place. Returns (the Linear's input
    size, which is the backbone's output size; the state-dict keys that went with it)."""
    attribute = next((a for a in HEAD_ATTRIBUTES if hasattr(net, a)), None)
    if attribute is None:
        raise ValueError(f"torchvision.{name}: no classifier head among {HEAD_ATTRIBUTES}")
    head = getattr(net, attribute)
    linears = [path for path, m in head.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"torchvision.{name}: its head {attribute!r} has no nn.Linear "
                         f"to remove")
    path = linears[-1]
    before = list(net.state_dict())
    if path == "":
        out_dim = head.in_features
        setattr(net, attribute, nn.Identity())
    else:
        parent, _, child = path.rpartition(".")
        owner = head.get_submodule(parent)
        out_dim = getattr(owner, child).in_features
        setattr(owner, child, nn.Identity())
    after = set(net.state_dict())
    return out_dim, [k for k in before if k not in after]


def torchvision_backbone(name: str) -> nn.Module:
    """A torchvision classifier without its last Linear. The model itself is the backbone
    (no wrapper), so its state-dict keys are torchvision's: released weights load as is."""
    import torchvision
    net = torchvision.models.get_model(name, weights=None)  # weights=None: nothing downloaded
    net.out_dim, net.head_keys = remove_classifier(net, name)
    return net


def timm_backbone(name: str) -> nn.Module:
    """A timm model without its classifier (what `num_classes=0` gives), keys as timm's."""
    try:
        import timm
    except ImportError as e:
        raise ImportError(f"backbone timm.{name} needs timm: pip install timm") from e
    net = timm.create_model(name, pretrained=False)
    before = list(net.state_dict())
    net.reset_classifier(0)  # same model as create_model(num_classes=0), built once
    after = set(net.state_dict())
    net.head_keys = [k for k in before if k not in after]
    # Models with a pre-logits layer output head_hidden_size features, not num_features.
    net.out_dim = getattr(net, "head_hidden_size", None) or net.num_features
    return net


def known_architecture(name: str) -> str | None:
    """Why `name` is not a backbone this installation can build; None when it is."""
    if name.startswith("torchvision."):
        import torchvision
        if name.removeprefix("torchvision.") not in torchvision.models.list_models():
            return f"torchvision has no model {name.removeprefix('torchvision.')!r}"
        return None
    if name.startswith("timm."):
        try:
            import timm
        except ImportError:
            return f"{name} needs timm: pip install timm"
        if not timm.is_model(name.removeprefix("timm.")):
            return f"timm has no model {name.removeprefix('timm.')!r}"
        return None
    if name not in BACKBONES:
        return (f"unknown architecture {name!r}; known: {sorted(BACKBONES)}, "
                f"torchvision.<name>, timm.<name>")
    return None


def build_backbone(name: str, width: int, small_stem: bool, image_size: int,
                   patch_size: int, pool: str = "cls") -> nn.Module:
    """A backbone module with `.out_dim`. torchvision/timm models keep their own defaults:
    width, small_stem, image_size, patch_size and pool only shape dejavu's own backbones."""
    if name.startswith("torchvision."):
        return torchvision_backbone(name.removeprefix("torchvision."))
    if name.startswith("timm."):
        return timm_backbone(name.removeprefix("timm."))
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}, "
                         f"torchvision.<name> or timm.<name>")
    return BACKBONES[name](width=width, small_stem=small_stem, image_size=image_size,
                           patch_size=patch_size, pool=pool)


class SSLModel(nn.Module):
    """Backbone plus projector. `projector_dims=[]` means no projector: the projector
    embedding is then the backbone embedding itself (models trained elsewhere often come
    without their head). `normalize` picks the input statistics: "dejavu" (fixed 0.5/0.25)
    or "imagenet" (what torchvision and timm weights expect). `pool`: a ViT's
    representation, its class token ("cls") or its patch tokens' mean ("mean")."""

    def __init__(self, backbone: str = "convnet", projector_dims: list[int] = (512, 512, 512),
                 width: int = 16, small_stem: bool = True, image_size: int = 32,
                 patch_size: int = 4, normalize: str = "dejavu", pool: str = "cls"):
        super().__init__()
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"unknown input normalisation {normalize!r}; known: "
                             f"{NORMALIZATIONS}")
        self.backbone = build_backbone(backbone, width, small_stem, image_size, patch_size,
                                       pool)
        self.projector = (projector(self.backbone.out_dim, list(projector_dims))
                          if len(projector_dims) else nn.Identity())
        self.normalize = normalize
        self.arch = {"backbone": backbone, "projector_dims": list(projector_dims), "width": width,
                     "small_stem": small_stem, "image_size": image_size,
                     "patch_size": patch_size}
        # Only when not the default, so arch dicts (and the stores keyed on them) of models
        # that existed before this option stay exactly as they were.
        if normalize != "dejavu":
            self.arch["normalize"] = normalize
        if pool != "cls":
            self.arch["pool"] = pool

    @property
    def projector_dim(self) -> int:
        """Size of the projector embedding (the backbone's when there is no projector)."""
        dims = self.arch["projector_dims"]
        return dims[-1] if dims else self.backbone.out_dim

    def normalize_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize == "dejavu":
            return (x - INPUT_MEAN) / INPUT_STD
        mean = x.new_tensor(IMAGENET_MEAN).view(1, -1, 1, 1)
        std = x.new_tensor(IMAGENET_STD).view(1, -1, 1, 1)
        return (x - mean) / std

    def forward(self, x: torch.Tensor, visible: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, 3, H, W) floats in [0, 1] -> backbone (N, Db), projector (N, Dp).
        `visible` (N, K): the patches a ViT sees (masked-autoencoder views); None: all."""
        x = self.normalize_input(x)
        if visible is None:
            h = self.backbone(x)
        elif isinstance(self.backbone, ViT):
            h = self.backbone(x, visible)
        else:
            raise ValueError(f"masked views need a ViT backbone, not {self.arch['backbone']}")
        return h, self.projector(h)

    def layer_modules(self, names) -> dict[str, nn.Module]:
        """The module whose output is each intermediate embedding of `names`
        (dejavu.core.layers): a backbone stage, or a hidden layer's ReLU in the projector."""
        stages, wanted = None, layers.inner(names)
        if any(layers.parse(n)[0] == "block" for n in wanted):
            b = self.backbone
            if isinstance(b, ConvNet):
                stages = list(b.features)
            elif isinstance(b, ResNet):
                stages = [b.net.layer1, b.net.layer2, b.net.layer3, b.net.layer4]
            elif isinstance(b, ViT):
                stages = list(b.blocks.layers)
            else:
                raise ValueError(f"per-stage embeddings need a built-in backbone, not "
                                 f"{self.arch['backbone']}")
        relus = [m for m in self.projector.modules() if isinstance(m, nn.ReLU)]
        out = {}
        for name in wanted:
            kind, i = layers.parse(name)
            found = stages if kind == "block" else relus
            if i > len(found) - (kind == "block"):
                raise ValueError(f"embedding {name}: the model has no such layer "
                                 f"({self.arch['backbone']}, projector "
                                 f"{self.arch['projector_dims']})")
            out[name] = found[i - 1]
        return out

    def embed(self, x: torch.Tensor, names=layers.OUTPUTS,
              visible: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The embeddings `names` of x (the two outputs always among them): intermediate
        ones taken by forward hooks as the model runs, pooled over space (a stage's feature
        map) or the class token (a Transformer block's tokens)."""
        taken: dict[str, torch.Tensor] = {}

        def take(name):
            def hook(module, inputs, output):
                taken[name] = (output[:, 0] if output.dim() == 3 else
                               output.mean(dim=(2, 3)) if output.dim() == 4 else output.clone())
            return hook

        handles = [module.register_forward_hook(take(name))
                   for name, module in self.layer_modules(names).items()]
        try:
            h, z = self(x, visible)
        finally:
            for handle in handles:
                handle.remove()
        return {"backbone": h, "projector": z, **taken}


def memory_format(device: torch.device | str) -> torch.memory_format:
    """The memory format a model and its inputs use on `device`: channels-last on CUDA
    (cuDNN's fast layout for convolutions and mixed precision), the default format on every
    CPU. On CPUs, channels-last training steps crashed (heap corruption) or gave gradients
    thousands of times further from float64's than float32's rounding explains, the demo's
    ConvNet and correlation ResNets among them (AMD EPYC with and without AVX-512, torch
    2.14.1); which shapes are hit depends on the CPU and on kernels chosen at run time, so
    no rule on layer shapes can be trusted. The default format costs up to 1.5x of a CPU
    training step (`python bench/memory_format.py`); `python tests/test_memory_format.py`
    checks a CPU against float64 (docs/methods.md)."""
    return torch.channels_last if torch.device(device).type == "cuda" else \
        torch.contiguous_format


def save_checkpoint(path: str, model: SSLModel, **extra) -> None:
    torch.save({"arch": model.arch, "state_dict": model.state_dict(), **extra}, path)


def load_checkpoint(path: str, map_location="cpu") -> tuple[SSLModel, dict]:
    """Rebuild a model from a checkpoint; weights-only loading (safe for untrusted files)."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    arch = dict(ckpt["arch"])
    text = arch.pop("text", None)  # a vision-language model's text tower (dejavu.vlm)
    model = SSLModel(**arch)
    if text is not None:
        from .text import TextTower
        model.text = TextTower(**text)
        model.arch["text"] = text
    model.load_state_dict(ckpt["state_dict"])
    return model, ckpt


def pick_device(device: str = "auto", count: int = 1) -> torch.device:
    """"auto": CUDA when usable, else the CPU. "cuda" or "cuda:N" (what a job given GPUs
    asks for): that device, or an error saying why CUDA is not usable -- a GPU that was
    asked for never turns into a silent CPU run. Plain "cuda" first claims `count` GPUs of
    this machine that no other live job holds (`gpus.claim`; not under SLURM, which
    binds devices itself), so concurrent local jobs get distinct devices."""
    if device == "auto":
        chosen = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        log_device(chosen)
        return chosen
    chosen = torch.device(device)
    if chosen.type == "cuda" and chosen.index is None:
        gpus.claim(count)
    if chosen.type == "cuda":
        problem = cuda_problem(chosen.index or 0)
        if problem:
            raise RuntimeError(f"device {device!r} was asked for (a job given GPUs asks for "
                               f"CUDA), but CUDA is not usable here: {problem}")
    log_device(chosen)
    return chosen


def log_device(device: torch.device) -> None:
    """The job's log names where it computes (its provenance on a cluster's nodes)."""
    if device.type == "cuda":
        index = device.index or 0
        log.info("device: %s, %s (torch %s, CUDA %s)", device,
                 torch.cuda.get_device_name(index), torch.__version__, torch.version.cuda)
    else:
        log.info("device: cpu (torch %s, %d threads)", torch.__version__,
                 torch.get_num_threads())


def cuda_problem(index: int = 0) -> str | None:
    """Why CUDA device `index` cannot be used, or None when it can."""
    import os
    if torch.version.cuda is None:
        return "this torch build has no CUDA support (a CPU-only wheel)"
    if not torch.cuda.is_available():
        try:
            torch.cuda.init()
        except Exception as err:  # e.g. no driver, or a driver too old for this torch
            return f"{type(err).__name__}: {err}"
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return f"no CUDA device is visible (CUDA_VISIBLE_DEVICES={visible!r})"
    if index >= torch.cuda.device_count():
        return f"device {index} asked for, {torch.cuda.device_count()} visible"
    return None
