"""Checks of a workflow config that the JSON schema cannot express, run when the Snakefile
is parsed, so a bad setting fails before any job starts, naming its key."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from .data import removal
from .core import layers, provenance
from .dataset_config import (STORE_SETTINGS, STORE_SOURCE, dataset_problems,  # noqa: F401
                             dataset_settings, dataset_store, heldout_problems, store_problems,
                             synthetic_split_problems)
from .training import methods
from .training.augment_settings import AugmentConfig


class ConfigError(ValueError):
    pass


def check(config: dict, workdir: str = ".") -> None:
    """Raise ConfigError listing every problem (each with its config key)."""
    train, model = config["train"], config["model"]
    modules = [str(Path(workdir) / p) for p in train.get("method_modules", [])]
    for path in modules:
        if not Path(path).is_file():
            raise ConfigError(f"train.method_modules: {path} does not exist")
    methods.load_modules(modules)  # torch is imported only for methods of your own
    problems = _method_problems(config)
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
    late = [e for e in train.get("checkpoints", []) if e > train["epochs"]]
    if late:
        problems.append(f"train.checkpoints: epochs {late} exceed train.epochs "
                        f"({train['epochs']})")
    problems += dataset_problems(config["dataset"], workdir)
    problems += synthetic_split_problems(config)
    problems += heldout_problems(config)
    problems += store_problems(config, workdir)
    problems += layers.problems(config["knn"]["embeddings"], model["backbones"],
                                model["projector"])
    if config.get("unitmem", {}).get("enabled"):
        problems += layers.problems(config["unitmem"]["layers"], model["backbones"],
                                    model["projector"], "unitmem.layers")
    for entry in config.get("external", []):  # models trained elsewhere have their layers too
        problems += layers.problems(config["knn"]["embeddings"], [entry["architecture"]],
                                    entry.get("projector") or [],
                                    f"knn.embeddings (external model {entry['name']})")
    problems += _knn_problems(config)
    problems += _rcdm_problems(config)
    problems += _onemodel_problems(config, workdir)
    problems += _external_problems(config, workdir)
    problems += _removal_problems(config, workdir)
    problems += _vlm_problems(config, workdir)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def _method_problems(config: dict) -> list[str]:
    """Each trained method known, and its settings (a method with a recipe is checked with
    it, by dejavu.variants) and augmentation ones it can train with."""
    train, model = config["train"], config["model"]
    problems = []
    for name in train["methods"]:
        if name not in methods.names():
            problems.append(f"train.methods: unknown method {name!r}; known: "
                            f"{methods.names()} (register your own through "
                            f"train.method_modules)")
            continue
        method = methods.info(name)
        if name not in config.get("recipes", {}):
            problems += method.check(model["projector"], train["batch_size"],
                                     train.get("loss", {}).get(name, {}), model["backbones"])
        try:
            AugmentConfig.from_options({**method.augment, **train.get("augment", {})})
        except (TypeError, ValueError) as err:
            problems.append(f"train.augment: {err}")
    return problems


@lru_cache(maxsize=None)
def schema_of(path: str) -> dict:
    """The parsed schema, read once per process (the Snakefile asks for it three times on
    every parse) with libyaml's loader where PyYAML has it: ten times the pure-Python one."""
    import yaml
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(Path(path).read_text(), Loader=loader)


def _defaulting_validator(schema_path: str):
    """A JSON-schema validator that fills in each missing key's schema default as it walks
    the config (a copy of the default: the cached schema is never shared with a config)."""
    import copy

    import jsonschema
    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if validator.is_type(instance, "object"):
            for key, sub in props.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(base, {"properties": properties})(schema_of(schema_path))


def _at(error) -> str:
    """Where a schema error is, as a config key (`knn.k.0`), and what it says."""
    where = ".".join(map(str, error.absolute_path))
    return f"{where or '(top level)'}: {error.message}"


def validate(config: dict, schema_path: str) -> None:
    """Check `config` against the JSON schema, filling in its defaults in place; raise
    ConfigError listing every violation by key. (Snakemake's `validate` does the same but
    reads the 40 kB schema with the pure-Python YAML parser on every parse of the
    Snakefile, twice per SLURM job.)"""
    errors = sorted(_defaulting_validator(schema_path).iter_errors(config),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(map(_at, errors)))


NAME = r"[a-z][a-z0-9_]*"  # a method, backbone or external model name


def wildcard_constraints(schema_path: str) -> dict[str, str]:
    """The wildcards' patterns. Named choices (crop mode, embedding, classifier) are the
    schema's enums, so a new one is added in the schema alone."""
    schema = schema_of(schema_path)

    def choices(*path: str) -> str:
        node = schema
        for key in path:
            node = node["properties"][key]
        return "|".join(node["items"]["enum"])

    crop = choices("crop", "modes")
    embedding = schema["properties"]["knn"]["properties"]["embeddings"]["items"]["pattern"]
    return {"method": NAME, "backbone": NAME, "variant": NAME, "size": r"\d+", "seed": r"\d+",
            "subset": removal.SUBSET_PATTERN,
            "epoch": r"\d+", "job": r"\d+", "k": r"\d+", "crop": crop,
            "part": f"public|crops-({crop})", "embedding": "(?:" + embedding.strip("^$")[1:],
            "classifier": choices("onemodel", "classifiers")}


def merged(base: dict, overlay: dict) -> dict:
    """`base` with `overlay`'s keys: dicts merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = merged(base[key], value)
        else:
            out[key] = value
    return out


IMPORT_SETTINGS = ("architecture", "projector", "normalize", "key", "prefix", "width",
                   "small_stem", "patch_size")  # what importing an external model takes


def external_models(config: dict, schema_path: str) -> dict[str, dict]:
    """The external models by name, every setting resolved once: the schema's defaults for
    what an entry leaves out, then model.width, small_stem and patch_size and the first
    split.npc where the entry says null."""
    item = schema_of(schema_path)["properties"]["external"]["items"]["properties"]
    defaults = {key: spec["default"] for key, spec in item.items() if "default" in spec}
    models = {}
    for entry in config["external"]:
        model = {**defaults, **entry}
        for key in ("width", "small_stem", "patch_size"):
            if model[key] is None:
                model[key] = config["model"][key]
        model["train_size"] = model["train_size"] or config["split"]["npc"][0]
        models[model["name"]] = model
    return models


def knn_backend(config: dict) -> str:
    """knn.backend with `auto` resolved: torch where the search runs on CUDA (k-NN jobs given
    a GPU, or device cuda), FAISS on the CPU. Decided from the config, so the DAG knows
    whether to build an index; faiss-cpu and faiss-gpu install the same module, and the
    GPU route then needs neither."""
    knn = config["knn"]
    if knn.get("backend", "auto") != "auto":
        return knn["backend"]
    return "torch" if knn.get("gpus", 0) > 0 or config.get("device") == "cuda" else "faiss"


def _knn_problems(config: dict) -> list[str]:
    """The FAISS backend needs FAISS, which comes with an extra (README, "Installing")."""
    if knn_backend(config) != "faiss" or provenance.faiss_distribution():
        return []
    return [f"knn.backend: {config['knn'].get('backend', 'auto')} searches with FAISS here, "
            f"but FAISS is not installed: pip install 'dejavu-memorization[cpu]' (or [gpu] "
            f"on a CUDA 12 machine), or set knn.backend: torch"]


def _rcdm_problems(config: dict) -> list[str]:
    rcdm = config.get("rcdm", {})
    if not rcdm.get("enabled"):
        return []
    problems = []
    if rcdm["embedding"] not in config["knn"]["embeddings"]:
        problems.append(f"rcdm.embedding: {rcdm['embedding']!r} is not one of "
                        f"knn.embeddings {config['knn']['embeddings']} (its neighbours are "
                        f"what the decoders are conditioned on)")
    levels = len(rcdm["channel_mult"])
    if rcdm["resolution"] % 2 ** (levels - 1):
        problems.append(f"rcdm.resolution: {rcdm['resolution']} is not divisible by "
                        f"2^{levels - 1}, as {levels} UNet levels (rcdm.channel_mult) need")
    if rcdm["warmup_steps"] > rcdm["steps"]:
        problems.append(f"rcdm.warmup_steps: {rcdm['warmup_steps']} exceeds rcdm.steps "
                        f"({rcdm['steps']})")
    return problems


def _onemodel_problems(config: dict, workdir: str) -> list[str]:
    onemodel = config.get("onemodel", {})
    if not onemodel.get("enabled"):
        return []
    tags = onemodel.get("tags")
    if tags and not (Path(workdir) / tags).is_file():
        return [f"onemodel.tags: {tags} is not a file"]
    if ("naive_bayes" in onemodel["classifiers"] and not tags
            and config["dataset"]["name"] != "synthetic"):
        return [f"onemodel.classifiers: naive_bayes needs crop tags on a "
                f"{config['dataset']['name']} dataset; set onemodel.tags (an id,tag table) or "
                f"drop naive_bayes"]
    return []


def _external_problems(config: dict, workdir: str) -> list[str]:
    """External models: files present, architectures known, names free, before any job."""
    models = config.get("external", [])
    problems = []
    if not config["train"]["methods"] and not models:
        problems.append("train.methods: empty and no external models - nothing to test")
    if models and not config.get("onemodel", {}).get("enabled"):
        problems.append("external: models trained elsewhere are tested by the one-model "
                        "test; set onemodel.enabled: true")
    if "external" in config["train"]["methods"]:
        problems.append("train.methods: 'external' is the method name of external models")
    names = [m["name"] for m in models]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"external: the name {name!r} is used twice")
    for i, model in enumerate(models):
        key = f"external[{i}] ({model['name']})"
        if not (Path(workdir) / model["checkpoint"]).is_file():
            problems.append(f"{key}.checkpoint: {model['checkpoint']} is not a file")
        from .core.models import known_architecture  # torch: only with external models
        why = known_architecture(model["architecture"])
        if why:
            problems.append(f"{key}.architecture: {why}")
        size = model.get("train_size")
        if size is not None and size not in config["split"]["npc"]:
            problems.append(f"{key}.train_size: {size} is not one of split.npc "
                            f"{config['split']['npc']}")
    return problems


def _removal_problems(config: dict, workdir: str) -> list[str]:
    """The removal experiment needs SSLMem's ranking and the probe's accuracy, and must
    leave images in set A."""
    spec = config.get("removal", {})
    if not spec.get("enabled"):
        return []
    problems = [f"removal.enabled: needs {key}.enabled: true ({why})"
                for key, why in (("sslmem", "SSLMem ranks the images"),
                                 ("probe", "the probe measures what removal costs"))
                if not config[key]["enabled"]]
    strangers = [m for m in spec["methods"] if m not in config["train"]["methods"]]
    if strangers:
        problems.append(f"removal.methods: {strangers} not in train.methods")
    if config["dataset"]["name"] == "synthetic":  # every image of A is scored
        least = min(config["split"]["npc"]) * config["dataset"]["classes"]
        if max(spec["counts"]) >= least:
            problems.append(f"removal.counts: {max(spec['counts'])} images removed of a set A "
                            f"of {least} (split.npc x dataset.classes): remove fewer")
    return problems + _downstream_problems(spec.get("downstream", []), config["dataset"]["name"],
                                           workdir)


def _downstream_problems(datasets: list[dict], own: str, workdir: str) -> list[str]:
    """Each second dataset named once, not as the run's own, its store's files present."""
    problems, seen = [], {own}
    for i, data in enumerate(datasets):
        key = f"removal.downstream[{i}]"
        if data["name"] in seen:
            problems.append(f"{key}.name: {data['name']!r} names another dataset of the run")
        seen.add(data["name"])
        for field, path in (("index", data["index"]), ("images", downstream_images(data))):
            if not (Path(workdir) / path).exists():
                problems.append(f"{key}.{field}: {path} does not exist (a dataset store made "
                                f"by the dataset stages of its own config)")
    return problems


def downstream_images(data: dict) -> str:
    """A second dataset's image store: its `images`, else images.zarr beside its index."""
    return data.get("images") or os.path.join(os.path.dirname(data["index"]), "images.zarr")


def _vlm_problems(config: dict, workdir: str) -> list[str]:
    """The vision-language methods trained only by the VLM test, and its records' files
    present before any job."""
    problems = [f"train.methods: {name} trains on captioned records: the vision-language "
                f"test trains it (vlm.train.method; docs/vlm.md)"
                for name in sorted({"clip", "siglip"} & set(config["train"]["methods"]))]
    vlm = config.get("vlm", {})
    onemodel = vlm.get("onemodel", {})
    if vlm.get("enabled") and onemodel.get("enabled") and \
            onemodel.get("reference") == "sentence_transformers":
        path = onemodel.get("path")
        if not path or not (Path(workdir) / path).is_dir():
            problems.append(f"vlm.onemodel.path: {path} is not a folder (the "
                            f"sentence-transformers model of reference sentence_transformers)")
    if vlm.get("enabled") and vlm.get("external"):
        problems += _vlm_external_problems(vlm, workdir)
    train = vlm.get("train", {})
    late = [e for e in train.get("checkpoints", []) if e >= train.get("epochs", 0)]
    if vlm.get("enabled") and late:
        problems.append(f"vlm.train.checkpoints: epochs {late} are not before vlm.train.epochs "
                        f"({train['epochs']}), which is always tested")
    data = vlm.get("data", {})
    if not vlm.get("enabled") or data.get("source") == "synthetic":
        return problems
    if data["source"] == "coco":
        wanted = {f"vlm.data.coco.{key}": (data["coco"].get(key), kind)
                  for key, kind in (("captions", "file"), ("instances", "file"),
                                    ("images", "folder"))}
    else:
        wanted = {"vlm.data.jsonl": (data.get("jsonl"), "file")}
    for key, (value, kind) in wanted.items():
        path = Path(workdir) / str(value)
        if value is None:
            problems.append(f"{key}: needed for vlm.data.source {data['source']}")
        elif not (path.is_file() if kind == "file" else path.is_dir()):
            problems.append(f"{key}: {value} is not a {kind}")
    return problems


def _vlm_external_problems(vlm: dict, workdir: str) -> list[str]:
    """A VLM trained elsewhere: its files present, its training set declared, a test to
    run."""
    external, problems = vlm["external"], []
    for key in ("checkpoint", "model_config", "reference_checkpoint"):
        value = external.get(key)
        if value and not (Path(workdir) / value).is_file():
            problems.append(f"vlm.external.{key}: {value} is not a file")
    if not vlm.get("sets"):
        problems.append("vlm.external: needs vlm.sets, the records it was trained on (set A)")
    elif not (Path(workdir) / vlm["sets"]).is_file():
        problems.append(f"vlm.sets: {vlm['sets']} is not a file")
    if not external.get("reference_checkpoint") and not vlm["onemodel"]["enabled"]:
        problems.append("vlm.external: without reference_checkpoint only the one-model test "
                        "can run; set vlm.onemodel.enabled: true")
    return problems
