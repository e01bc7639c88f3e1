"""Checks of a workflow config that the JSON schema cannot express, run when the Snakefile
is parsed, so a bad setting fails before any job starts, naming its key."""

from __future__ import annotations

from pathlib import Path

from . import methods
from .augment import AugmentConfig


class ConfigError(ValueError):
    pass


def check(config: dict, workdir: str = ".") -> None:
    """Raise ConfigError listing every problem (each with its config key)."""
    train, model = config["train"], config["model"]
    modules = [str(Path(workdir) / p) for p in train.get("method_modules", [])]
    for path in modules:
        if not Path(path).is_file():
            raise ConfigError(f"train.method_modules: {path} does not exist")
    methods.load_modules(modules)
    problems = []
    for name in train["methods"]:
        if name not in methods.METHODS:
            problems.append(f"train.methods: unknown method {name!r}; known: "
                            f"{sorted(methods.METHODS)} (register your own through "
                            f"train.method_modules)")
            continue
        method = methods.METHODS[name]
        problems += method.check(model["projector"], train["batch_size"],
                                 train.get("loss", {}).get(name, {}))
        try:
            AugmentConfig.from_options({**method.augment, **train.get("augment", {})})
        except (TypeError, ValueError) as err:
            problems.append(f"train.augment: {err}")
    side, patch = config["crop"]["side"], model.get("patch_size", 4)
    if any(b.startswith("vit") for b in model["backbones"]) and side % patch:
        problems.append(f"model.patch_size: {patch} does not divide the image side "
                        f"crop.side = {side}, as a ViT needs")
    processes, gpus = train.get("processes"), train.get("gpus", 0)
    if processes and gpus and processes != gpus:
        problems.append(f"train.processes: {processes} data-parallel processes with "
                        f"train.gpus = {gpus}: on GPUs there is one process per GPU")
    if train["batch_size"] < (processes or gpus or 1):
        problems.append(f"train.batch_size: {train['batch_size']} is smaller than the number "
                        f"of data-parallel processes")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
