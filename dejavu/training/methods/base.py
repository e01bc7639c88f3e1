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
import inspect
from dataclasses import dataclass

import torch
from torch import nn

from ..augment import AugmentConfig, apply, sample, take
from ..distributed import gather
from ...core.models import SSLModel, memory_format
from . import METHODS, register  # noqa: F401  (re-exported for method modules)
from .catalog import BUILT_IN, check_settings

SETTINGS = ("options", "augment", "min_batch", "min_projector_dim", "uses_labels",
            "option_minimums", "trains_projector", "backbones", "scoring_mask")


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


class Method(nn.Module, abc.ABC):
    name: str = ""
    options: dict = {}            # keyword options (train.loss.<name>) and their defaults
    augment: dict = {}            # the method's augmentation recipe over AugmentConfig's
    min_batch: int = 2            # smallest batch the objective is defined for
    min_projector_dim: int = 2    # smallest projector output it is defined for
    uses_labels: bool = False
    option_minimums: dict = {}    # least value of some options
    trains_projector: bool = True  # False: no projector (model.projector [])
    backbones: tuple = ()         # name prefixes of the backbones it trains (): any
    scoring_mask: str = ""        # the option whose patch-mask ratio SSLMem's views use

    def __init_subclass__(cls, **kwargs):
        """A built-in method takes its settings from the torch-free catalog."""
        super().__init_subclass__(**kwargs)
        if cls.name in BUILT_IN and cls.__module__ == f"dejavu.training.methods.{cls.name}":
            for key in SETTINGS:
                setattr(cls, key, getattr(BUILT_IN[cls.name], key))

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

    # --- what the training loop calls -------------------------------------------------
    def view_configs(self, augment: AugmentConfig) -> list:
        """The views drawn from each image (ViewAugment each); two global views."""
        return [augment.view(0), augment.view(1)]

    def make_views(self, x: torch.Tensor, augment: AugmentConfig, generator: torch.Generator,
                   rows: slice, n_global: int) -> list[torch.Tensor]:
        """Views of this process's images x (rows `rows` of a global batch of n_global):
        parameters are drawn for the whole global batch, then sliced."""
        views, fmt = [], memory_format(x.device)
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
    def check(cls, projector_dims: list[int], batch_size: int, options: dict,
              backbones=()) -> list[str]:
        """Problems with these settings, as (config key, message) sentences; [] if none."""
        return check_settings(cls, projector_dims, batch_size, options, backbones)


class TwoViewMethod(Method):
    """A method whose loss compares the projector outputs of two views of each image, both
    from the same encoder (VICReg, SimCLR, Barlow Twins). Subclasses write `objective`."""

    @abc.abstractmethod
    def objective(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        """The scalar loss of the two views' projector outputs (N, D) each."""

    def forward(self, views, labels, progress):
        z_a, z_b = (self.model(v)[1] for v in views)
        with loss_precision(z_a):  # batch statistics over the global batch are too coarse in bf16
            return self.objective(gather(z_a.float()), gather(z_b.float()))


class LossFunctionMethod(TwoViewMethod):
    """A two-view method whose objective is a plain function `loss_fn(z_a, z_b, **options)`;
    its keyword defaults are the method's options."""
    loss_fn = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name not in BUILT_IN:  # a built-in's come from the catalog
            cls.options = objective_options(cls.loss_fn)

    def objective(self, z_a, z_b):
        return type(self).loss_fn(z_a, z_b, **{k: getattr(self, k) for k in self.options})


def loss_precision(tensor: torch.Tensor):
    """Autocast off on the tensor's device, for a loss: its matmuls and batch statistics run
    in float32. (`.float()` inside an autocast region does not leave it: a matmul of two
    float32 tensors still runs in bf16 there.) Networks keep running under autocast."""
    return torch.autocast(tensor.device.type, enabled=False)


def objective_options(fn) -> dict:
    """Keyword defaults of a loss function, as a method's `options`."""
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}
