"""What an SSL method is to the training loop, and the registry that names methods.

A method is an `nn.Module` that owns the encoder being trained (an `SSLModel`: backbone +
projector, the part every later stage embeds with) and whatever else its objective needs
(a predictor, a momentum teacher, prototypes, a classifier). The loop asks it for the views
of a batch, for the loss of those views, to update itself after each optimizer step (momentum
teachers), and for the encoder to save at a checkpoint.

A new method is a subclass registered under its name:

    @register
    class Mine(TwoViewMethod):
        name = "mine"
        options = {"weight": 1.0}            # train.loss.mine in the config
        def objective(self, z_a, z_b):       # projector outputs of the two views
            return self.weight * ...
"""

from __future__ import annotations

import abc
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..augment import AugmentConfig, apply, sample, take
from ..distributed import gather
from ..models import SSLModel, memory_format

METHODS: dict[str, type[Method]] = {}


@dataclass(frozen=True)
class Progress:
    """Where training is: optimizer step (0-based) of total, and the epoch (1-based)."""
    step: int
    total_steps: int
    epoch: int
    epochs: int

    @property
    def fraction(self) -> float:
        return self.step / max(1, self.total_steps)


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available under `cls.name` (train.methods)."""
    if not getattr(cls, "name", ""):
        raise ValueError(f"{cls.__qualname__} needs a `name`")
    METHODS[cls.name] = cls
    return cls


def load_modules(paths: list[str]) -> None:
    """Import user method files (train.method_modules); each registers its methods."""
    for path in paths:
        path = Path(path).resolve()
        if not path.exists():
            raise FileNotFoundError(f"method module {path} does not exist")
        name = f"dejavu_user_method_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


def source_file(name: str) -> str | None:
    """The user module a method was registered from (None for built-in methods)."""
    module = sys.modules.get(get(name).__module__)
    path = getattr(module, "__file__", None)
    return path if module and module.__name__.startswith("dejavu_user_method_") else None


def get(name: str) -> type[Method]:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {sorted(METHODS)} (a method of "
                         f"your own is registered from train.method_modules)")
    return METHODS[name]


class Method(nn.Module, abc.ABC):
    name: str = ""
    options: dict = {}            # keyword options (train.loss.<name>) and their defaults
    augment: dict = {}            # the method's augmentation recipe over AugmentConfig's
    min_batch: int = 2            # smallest batch the objective is defined for
    min_projector_dim: int = 2    # smallest projector output it is defined for
    uses_labels: bool = False

    def __init__(self, model: SSLModel, classes: int = 0, **options):
        super().__init__()
        unknown = set(options) - set(self.options)
        if unknown:
            raise ValueError(f"{self.name}: unknown options {sorted(unknown)}; known: "
                             f"{sorted(self.options)}")
        for key, default in self.options.items():
            setattr(self, key, options.get(key, default))
        self.model = model
        self.classes = classes

    @property
    def memory_format(self) -> torch.memory_format:
        """The memory format of the method's networks and views (`models.memory_format`)."""
        return memory_format(self)

    # --- what the training loop calls -------------------------------------------------
    def view_configs(self, augment: AugmentConfig) -> list:
        """The views drawn from each image (ViewAugment each); two global views."""
        return [augment.view(0), augment.view(1)]

    def make_views(self, x: torch.Tensor, augment: AugmentConfig, generator: torch.Generator,
                   rows: slice, n_global: int) -> list[torch.Tensor]:
        """Views of this process's images x (rows `rows` of a global batch of n_global):
        parameters are drawn for the whole global batch, then sliced."""
        views, fmt = [], self.memory_format
        for cfg in self.view_configs(augment):
            params = take(sample(n_global, cfg, generator, x.device), rows)
            views.append(apply(x, params, cfg).contiguous(memory_format=fmt))
        return views

    @abc.abstractmethod
    def forward(self, views: list[torch.Tensor], labels: torch.Tensor | None,
                progress: Progress) -> torch.Tensor:
        """The loss of one batch (views of this process's images)."""

    @torch.no_grad()
    def after_step(self, progress: Progress) -> None:
        """Called after every optimizer step (momentum teachers update here)."""

    def encoder(self) -> SSLModel:
        """The network saved at checkpoints and used by every later stage."""
        return self.model

    # --- checks before training ---------------------------------------------------------
    @classmethod
    def check(cls, projector_dims: list[int], batch_size: int, options: dict) -> list[str]:
        """Problems with these settings, as (config key, message) sentences; [] if none."""
        problems = []
        unknown = set(options) - set(cls.options)
        if unknown:
            problems.append(f"train.loss.{cls.name}: unknown options {sorted(unknown)}; "
                            f"{cls.name} takes {sorted(cls.options)}")
        if batch_size < cls.min_batch:
            problems.append(f"train.batch_size: {cls.name} needs a batch of at least "
                            f"{cls.min_batch}, got {batch_size}")
        if projector_dims[-1] < cls.min_projector_dim:
            problems.append(f"model.projector: {cls.name} needs a projector output of at "
                            f"least {cls.min_projector_dim} dimensions, got "
                            f"{projector_dims[-1]}")
        return problems


class TwoViewMethod(Method):
    """A method whose loss compares the projector outputs of two views of each image, both
    from the same encoder (VICReg, SimCLR, Barlow Twins). Subclasses write `objective`."""

    @abc.abstractmethod
    def objective(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        """The scalar loss of the two views' projector outputs (N, D) each."""

    def forward(self, views, labels, progress):
        z_a, z_b = (self.model(v)[1] for v in views)
        # the loss in float32 over the global batch: batch statistics are too coarse in bf16
        return self.objective(gather(z_a.float()), gather(z_b.float()))


class LossFunctionMethod(TwoViewMethod):
    """A two-view method whose objective is a plain function `loss_fn(z_a, z_b, **options)`;
    its keyword defaults are the method's options."""
    loss_fn = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.options = objective_options(cls.loss_fn)

    def objective(self, z_a, z_b):
        return type(self).loss_fn(z_a, z_b, **{k: getattr(self, k) for k in self.options})


def objective_options(fn) -> dict:
    """Keyword defaults of a loss function, as a method's `options`."""
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}
