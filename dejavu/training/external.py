"""Models trained elsewhere, turned into dejavu checkpoints.

A weights file from anywhere (a torchvision or timm state dict, a released SSL backbone such
as VICReg's resnet50.pth, a DDP training state, a dejavu checkpoint) is read weights-only,
unwrapped to a flat state dict, matched strictly against an `SSLModel`, and saved as a
normal dejavu checkpoint: every later stage then loads it through `load_checkpoint`.

Keys are matched in three steps: `unwrap` finds the state dict inside the file,
`strip_prefix` removes wrapper prefixes (`module.` of DDP), `split_parts` tells backbone from
projector keys. A file with `backbone.*` keys is a whole encoder (dejavu's own layout);
otherwise every key is a backbone key. The classifier head that torchvision and timm
backbones lose is dropped from the file. Whatever is left must fit exactly: a misfit is an
error that names the keys, never a silently half-loaded model.
"""

from __future__ import annotations

import logging
import pickle
import re

import torch

from ..core.models import SSLModel, save_checkpoint
from ..core.store import file_digest

log = logging.getLogger(__name__)

# Where training scripts commonly keep the weights inside a checkpoint, in the order tried.
WRAPPER_KEYS = ("state_dict", "model", "teacher", "student", "module")
# Prefixes that wrap every key: DDP's `module.`, torch.compile's `_orig_mod.`.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
EXTERNAL_FAMILIES = ("torchvision.", "timm.")
SHOWN = 20  # keys listed per kind of misfit; the rest are counted


# --- reading -------------------------------------------------------------------------------
def read_weights(path: str, key: str = "auto") -> dict[str, torch.Tensor]:
    """The flat state dict in the file at `path`; `key` as in `unwrap`. Files are never
    unpickled: only tensors and plain containers load (safe for untrusted files)."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file  # installed along with timm
        return unwrap(load_file(str(path), device="cpu"), key, str(path))
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower():
            raise ValueError(f"{path} is not a readable PyTorch checkpoint: {e}") from e
        raise ValueError(f"{path} holds Python objects beyond tensors and is not loaded: "
                         f"untrusted checkpoints are never unpickled. Save its state dict "
                         f"(tensors only) instead. ({str(e).splitlines()[0]})") from e
    except (RuntimeError, KeyError, EOFError) as e:
        raise ValueError(f"{path} is not a readable PyTorch checkpoint: {e!r}") from e
    return unwrap(loaded, key, str(path))


def is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values())


def unwrap(loaded, key: str = "auto", source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint. key "auto": the object itself if all its
    values are tensors, else the first of WRAPPER_KEYS holding a dict (repeatedly, for
    wrappers in wrappers); any other key: that top-level entry, which must exist."""
    if not isinstance(loaded, dict):
        raise ValueError(f"{source} holds a {type(loaded).__name__}, not a dict of tensors")
    if key != "auto":
        if key not in loaded:
            raise ValueError(f"{source} has no key {key!r}; its top-level keys: "
                             f"{sorted(map(str, loaded))}")
        loaded = loaded[key]
    while key == "auto" and not is_state_dict(loaded):
        found = next((k for k in WRAPPER_KEYS if isinstance(loaded.get(k), dict)), None)
        if found is None:
            raise ValueError(f"{source}: no state dict found under {WRAPPER_KEYS}; its "
                             f"top-level keys: {sorted(map(str, loaded))} (name one as key)")
        log.info("%s: weights taken from its %r entry", source, found)
        loaded = loaded[found]
    if not isinstance(loaded, dict):
        raise ValueError(f"{source}[{key!r}] holds a {type(loaded).__name__}, not a dict")
    others = [k for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if others:
        raise ValueError(f"{source}: entries that are not tensors: {listed(others)}; name "
                         f"the entry holding the state dict as key")
    return dict(loaded)


# --- matching keys (pure) ------------------------------------------------------------------
def strip_prefix(weights: dict, prefix: str = "auto") -> dict:
    """prefix "auto": remove each of WRAPPER_PREFIXES that every key has; "": nothing;
    any other string: remove it from the keys that have it, keep the others as they are."""
    if prefix == "auto":
        while weights:
            common = next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in weights)),
                          None)
            if common is None:
                break
            log.info("stripped %r from every key", common)
            weights = {k.removeprefix(common): v for k, v in weights.items()}
        return dict(weights)
    if not prefix:
        return dict(weights)
    if not any(k.startswith(prefix) for k in weights):
        raise ValueError(f"no key starts with prefix {prefix!r}; keys look like "
                         f"{listed(sorted(weights), 5)}")
    stripped = {k.removeprefix(prefix): v for k, v in weights.items()}
    if len(stripped) < len(weights):
        raise ValueError(f"stripping {prefix!r} makes keys collide with unprefixed ones")
    return stripped


def split_parts(weights: dict) -> tuple[dict, dict, dict]:
    """(backbone, projector, other) weights, part prefixes removed. Without any
    `backbone.` key the file is a bare backbone: all of it goes to the backbone."""
    if not any(k.startswith("backbone.") for k in weights):
        return dict(weights), {}, {}
    parts: tuple[dict, dict, dict] = ({}, {}, {})
    for k, v in weights.items():
        if k.startswith("backbone."):
            parts[0][k.removeprefix("backbone.")] = v
        elif k.startswith("projector."):
            parts[1][k.removeprefix("projector.")] = v
        else:
            parts[2][k] = v
    return parts


def drop_head(weights: dict, head_keys: list[str]) -> dict:
    """The backbone weights without the keys of the classifier the backbone does not have."""
    dropped = [k for k in head_keys if k in weights]
    if dropped:
        log.info("dropped classifier head: %s", ", ".join(dropped))
    return {k: v for k, v in weights.items() if k not in dropped}


def misfits(expected: dict[str, torch.Size], given: dict[str, torch.Tensor]):
    """(missing keys, unexpected keys, shape mismatches as (key, given, expected) shapes).
    BatchNorm's `num_batches_tracked` counters may be missing: evaluation does not use them
    and many released files leave them out."""
    missing = [k for k in expected
               if k not in given and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in given if k not in expected]
    shapes = [(k, tuple(v.shape), tuple(expected[k])) for k, v in given.items()
              if k in expected and tuple(v.shape) != tuple(expected[k])]
    return missing, unexpected, shapes


def projector_sizes(weights: dict) -> list[int]:
    """Output sizes of a projector's Linear layers, from keys like `3.weight` (a guess to
    suggest to the user, in layer order)."""
    layers = [(int(m.group(1)), v.shape[0]) for k, v in weights.items()
              if (m := re.fullmatch(r"(\d+)\.weight", k)) and v.ndim == 2]
    return [size for _, size in sorted(layers)]


def listed(keys: list, shown: int = SHOWN) -> str:
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return f"[{', '.join(map(str, keys[:shown]))}]{more} ({len(keys)})"


def misfit_message(source: str, architecture: str, missing, unexpected, shapes,
                   projector: dict, bare: bool) -> str:
    """The error for a file that does not fit; `projector` is the file's projector weights,
    `bare` whether the file is a bare backbone (no `backbone.*` keys)."""
    problems = []
    if missing:
        problems.append(f"missing keys {listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {listed(unexpected)}")
    if shapes:
        problems.append("shape mismatches " + listed(
            [f"{k}: checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in shapes]))
    text = f"checkpoint {source} does not fit architecture {architecture}: " + "; ".join(problems)
    if any(k.startswith("projector.") for k in unexpected) and projector:
        text += (f". The checkpoint has a projector (Linear outputs "
                 f"{projector_sizes(projector)}): set the projector dims to load it")
    if bare:
        text += ". The file has no backbone.* keys, so its keys were matched as backbone.<key>"
    return text


# --- loading -------------------------------------------------------------------------------
def load_external(path: str, architecture: str, projector: list[int] | None = None,
                  normalize: str | None = None, key: str = "auto", prefix: str = "auto",
                  image_size: int = 32, width: int = 16, small_stem: bool = True,
                  patch_size: int = 4) -> SSLModel:
    """An SSLModel of `architecture` (with a projector of `projector` dims, none if None)
    holding the weights of the file at `path`; every weight must fit exactly. `normalize`
    defaults to "imagenet" for torchvision./timm. models, else "dejavu"."""
    if normalize is None:
        normalize = "imagenet" if architecture.startswith(EXTERNAL_FAMILIES) else "dejavu"
    model = SSLModel(architecture, list(projector or []), width=width, small_stem=small_stem,
                     image_size=image_size, patch_size=patch_size, normalize=normalize)
    weights = strip_prefix(read_weights(path, key), prefix)
    backbone, head, other = split_parts(weights)
    backbone = drop_head(backbone, getattr(model.backbone, "head_keys", []))
    given = {**{f"backbone.{k}": v for k, v in backbone.items()},
             **{f"projector.{k}": v for k, v in head.items()}, **other}
    expected = model.state_dict()
    missing, unexpected, shapes = misfits({k: v.shape for k, v in expected.items()}, given)
    if missing or unexpected or shapes:
        bare = not any(k.startswith("backbone.") for k in weights)
        raise ValueError(misfit_message(path, architecture, missing, unexpected, shapes, head,
                                        bare))
    model.load_state_dict({**expected, **given}, strict=True)
    return model


def run(source_path: str, out_path: str, *, architecture: str,
        projector: list[int] | None = None, normalize: str | None = None, key: str = "auto",
        prefix: str = "auto", image_size: int = 32, width: int = 16, small_stem: bool = True,
        patch_size: int = 4, epoch: int = 0) -> None:
    """Convert the weights file at `source_path` into the dejavu checkpoint `out_path`,
    recording where it came from (path and SHA-256) and `epoch`, which the caller gives."""
    model = load_external(source_path, architecture, projector, normalize, key, prefix,
                          image_size=image_size, width=width, small_stem=small_stem,
                          patch_size=patch_size).eval()
    save_checkpoint(out_path, model, epoch=epoch, source=str(source_path),
                    source_sha256=file_digest(source_path))
    log.info("loaded %s as %s (input normalisation %s): %d parameters, embeddings of %d "
             "(backbone) and %d (projector) dims; saved to %s", source_path, architecture,
             model.normalize, sum(p.numel() for p in model.parameters()),
             model.backbone.out_dim, model.projector_dim, out_path)
