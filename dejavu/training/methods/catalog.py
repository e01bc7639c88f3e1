"""What the built-in methods accept, without torch: their options and defaults, their
augmentation recipes and the settings they cannot train with. The config check at
Snakefile parse time reads this; each method's class (`dejavu.training.methods.<name>`) takes its
settings from here, and tests/test_methods.py checks that the two agree."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MethodInfo:
    """The settings side of a method; a `Method` class has the same attributes."""
    name: str
    options: dict                 # train.loss.<name> keys and their defaults
    augment: dict = field(default_factory=dict)  # recipe over AugmentConfig's defaults
    min_batch: int = 2            # smallest batch the objective is defined for
    min_projector_dim: int = 2    # smallest projector output it is defined for
    uses_labels: bool = False
    option_minimums: dict = field(default_factory=dict)
    trains_projector: bool = True  # False: the encoder has no projector (model.projector [])
    backbones: tuple = ()         # name prefixes of the backbones it trains (): any
    scoring_mask: str = ""        # the option whose patch-mask ratio SSLMem's views use

    def check(self, projector_dims: list[int], batch_size: int, options: dict,
              backbones=()) -> list[str]:
        return check_settings(self, projector_dims, batch_size, options, backbones)


def check_settings(method, projector_dims: list[int], batch_size: int,
                   options: dict, backbones=()) -> list[str]:
    """Problems of these settings for `method` (a MethodInfo or a Method class), each
    sentence naming its config key; [] if none. `projector_dims` [] is no projector (the
    objective then reads the backbone's output, whose size is not known here)."""
    name = method.name
    problems = []
    unknown = set(options) - set(method.options)
    if unknown:
        problems.append(f"train.loss.{name}: unknown options {sorted(unknown)}; "
                        f"{name} takes {sorted(method.options)}")
    if batch_size < method.min_batch:
        problems.append(f"train.batch_size: {name} needs a batch of at least "
                        f"{method.min_batch}, got {batch_size}")
    if len(projector_dims) and projector_dims[-1] < method.min_projector_dim:
        problems.append(f"model.projector: {name} needs a projector output of at least "
                        f"{method.min_projector_dim} dimensions, got {projector_dims[-1]}")
    if not getattr(method, "trains_projector", True) and len(projector_dims):
        problems.append(f"model.projector: {name} trains no projector, set it to [] for "
                        f"{name} (recipes: {{{name}: {{model: {{projector: []}}}}}})")
    prefixes = getattr(method, "backbones", ())
    for backbone in backbones if prefixes else ():
        if not backbone.startswith(tuple(prefixes)):
            problems.append(f"model.backbones: {name} trains {'/'.join(prefixes)}* backbones "
                            f"only, not {backbone} (train {name} in a config of its own)")
    for key, least in getattr(method, "option_minimums", {}).items():
        if options.get(key, method.options[key]) < least:
            problems.append(f"train.loss.{name}.{key}: needs at least {least}")
    return problems


BUILT_IN = {info.name: info for info in (
    MethodInfo("vicreg", {"sim_coeff": 25.0, "std_coeff": 25.0, "cov_coeff": 1.0}),
    MethodInfo("simclr", {"temperature": 0.15},
               augment={"blur_prob": (0.5, 0.5), "solarize_prob": (0.0, 0.0)}),
    MethodInfo("barlow_twins", {"lambda_offdiag": 0.0051}),
    MethodInfo("byol", {"momentum": 0.996, "predictor_hidden": 512}),
    MethodInfo("dino", {"prototypes": 1024, "student_temp": 0.1, "teacher_temp": 0.04,
                        "warmup_teacher_temp": 0.04, "warmup_teacher_temp_epochs": 0,
                        "center_momentum": 0.9, "momentum": 0.996, "local_crops": 0,
                        "local_scale": (0.05, 0.4), "local_size": 0.5},
               option_minimums={"prototypes": 2}),
    MethodInfo("supervised", {"label_smoothing": 0.0, "head": "bn_relu_linear"},
               min_projector_dim=1,
               uses_labels=True),
    # He et al. 2022: 75 % of the patches removed, a decoder of 8 blocks 512 wide (16
    # heads), per-patch normalised targets; crops of 20-100 % of the image and flips only.
    MethodInfo("mae", {"mask_ratio": 0.75, "decoder_dim": 512, "decoder_depth": 8,
                       "decoder_heads": 16, "norm_pix_loss": True},
               augment={"scale_min": 0.2, "jitter_prob": 0.0, "grayscale_prob": 0.0,
                        "blur_prob": (0.0, 0.0), "solarize_prob": (0.0, 0.0)},
               min_batch=1, trains_projector=False, backbones=("vit",),
               scoring_mask="mask_ratio"),
    # Radford et al. 2021 (section 2.3): the contrastive image-caption loss, a learned
    # temperature; the text tower here is dejavu's (core/text.py: hashed words, no
    # vocabulary file), 4 blocks 256 wide; crops of 90-100 % of the image, as OpenCLIP's
    # training transform. Its labels are the captions' token ids.
    MethodInfo("clip", {"context": 32, "buckets": 32768, "text_dim": 256, "text_depth": 4,
                        "text_heads": 4},
               augment={"scale_min": 0.9, "jitter_prob": 0.0, "grayscale_prob": 0.0,
                        "blur_prob": (0.0, 0.0), "solarize_prob": (0.0, 0.0)},
               uses_labels=True),
    # Zhai et al. 2023: the pairwise sigmoid loss over CLIP's towers (clip's options).
    MethodInfo("siglip", {"context": 32, "buckets": 32768, "text_dim": 256, "text_depth": 4,
                          "text_heads": 4},
               augment={"scale_min": 0.9, "jitter_prob": 0.0, "grayscale_prob": 0.0,
                        "blur_prob": (0.0, 0.0), "solarize_prob": (0.0, 0.0)},
               uses_labels=True),
)}
