"""Bad settings fail when the Snakefile is parsed, naming their key: the JSON schema, then
`dejavu.config.check`, run here in-process on config.yaml with one change each (the two
tests in test_workflow.py show Snakemake stops on them before any job)."""

import copy

import pytest
import yaml

from conftest import REPO
from dejavu import config as checks
from dejavu import variants

pytestmark = pytest.mark.unit

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
BASE = yaml.safe_load((REPO / "config.yaml").read_text())


def problems(**changes) -> str:
    """What parsing the Snakefile would say of config.yaml with `changes` (section: dict, or
    a whole value for a top-level list); "" when nothing."""
    config = copy.deepcopy(BASE)
    for section, change in changes.items():
        if isinstance(change, dict):
            config.setdefault(section, {}).update(change)
        else:
            config[section] = change
    try:
        checks.validate(config, SCHEMA)
        checks.check(config, workdir=str(REPO))
    except Exception as err:  # noqa: BLE001 -- the message is what is tested
        return str(err)
    return ""


def test_the_demo_config_is_valid():
    assert problems() == ""


@pytest.mark.parametrize("overlay", ["config/sweep.yaml", "config/mitigation.yaml",
                                     "config/cpu_check.yaml",
                                     "bench/methods.yaml", "bench/supervised.yaml",
                                     "bench/supervised_why.yaml", "bench/mae.yaml",
                                     "bench/removal.yaml",
                                     "tests/known_answer.yaml",
                                     *(f"config/paper/cpu/{name}.yaml" for name in (
                                         "vicreg_invariance", "simclr_temperature", "sizes",
                                         "model_size"))])
def test_every_shipped_overlay_is_valid_with_its_variants(overlay, tmp_path):
    """The overlays the docs and benches run are checked as the Snakefile would check them,
    variants included (they are otherwise only met by hours-long runs). A second dataset's
    store, which bench/removal.py makes before its run, stands here as empty files in a
    working folder of its own."""
    config = checks.merged(BASE, yaml.safe_load((REPO / overlay).read_text()))
    checks.validate(config, SCHEMA)
    workdir = str(REPO)
    for data in config["removal"]["downstream"]:
        workdir = str(tmp_path)
        for path in (data["index"], checks.downstream_images(data)):
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).touch()
    checks.check(config, workdir=workdir)
    names = [entry["name"] for entry in variants.entries(config)]
    configs = variants.variants(config, SCHEMA, str(REPO))
    assert list(configs) == ["default", *names]
    variants.model_settings(config, configs, SCHEMA, str(REPO))


@pytest.mark.parametrize("changes, key", [
    ({"train": {"epoch": 10}}, "'epoch' was unexpected"),            # unknown key
    ({"knn": {"k": [-3]}}, "knn.k.0: -3 is less than the minimum of 1"),                          # negative k
    ({"score": {"p": 1.5}}, "score.p: 1.5 is greater than"),                       # p above 1
    ({"score": {"p": 0}}, "score.p: 0 is less than or equal"),                         # p of 0
    ({"model": {"projector": [64, 1]}}, "model.projector: vicreg needs a projector output"),
    ({"train": {"batch_size": 1}}, "train.batch_size: vicreg needs a batch of at least 2"),
    ({"train": {"methods": ["vicreg", "mae"]}},
     "model.backbones: mae trains vit* backbones only, not convnet"),
    ({"train": {"methods": ["mae"]}, "model": {"backbones": ["vit_mini"]}},
     "model.projector: mae trains no projector, set it to []"),
    ({"train": {"methods": ["clip"]}}, "train.methods: clip trains on captioned records"),
    ({"train": {"methods": ["siglip"]}}, "train.methods: siglip trains on captioned records"),
    ({"train": {"loss": {"vicreg": {"sim_coef": 1}}}}, "'sim_coef' was unexpected"),
    ({"train": {"method_modules": ["nowhere.py"]}}, "train.method_modules"),
    ({"onemodel": {"classifiers": ["svm"]}}, "onemodel.classifiers.0: 'svm' is not one of"),
    ({"onemodel": {"tags": "nowhere.csv"}}, "onemodel.tags: nowhere.csv is not a file"),
    ({"onemodel": {"resnet": {"depth": 50}}}, "onemodel.resnet.depth: 50 is not one of"),
    ({"sslmem": {"views": 0}}, "sslmem.views: 0 is less than"),
    ({"train": {"checkpoints": [100, 500, 600]}},
     "train.checkpoints: epochs [500, 600] exceed train.epochs (400)"),
    ({"train": {"methods": []}}, "train.methods: empty and no external models"),
    ({"train": {"methods": ["external"]}}, "'external' is the method name of external models"),
    ({"external": [{"name": "mine", "checkpoint": "nowhere.pt", "architecture": "convnet"}]},
     "external[0] (mine).checkpoint: nowhere.pt is not a file"),
    ({"external": [{"name": "mine", "checkpoint": "config.yaml",
                    "architecture": "torchvision.resnet7"}]},
     "external[0] (mine).architecture: torchvision has no model 'resnet7'"),
    ({"external": [{"name": "mine", "checkpoint": "config.yaml", "architecture": "convnet",
                    "train_size": 7}]}, "external[0] (mine).train_size: 7 is not one of"),
    ({"external": [{"name": "Mine!", "checkpoint": "config.yaml", "architecture": "convnet"}]},
     "external.0.name: 'Mine!' does not match"),
    ({"external": [{"name": "mine", "checkpoint": "config.yaml"}]}, "'architecture' is a "
                                                                    "required property"),
])
def test_bad_setting_is_named(changes, key):
    assert key in problems(**changes)


@pytest.mark.parametrize("embeddings, key", [
    (["layer2"], "knn.embeddings.0: 'layer2' does not match"),
    (["block4"], "knn.embeddings: block4 - convnet has 4 stages, the last of which is "
                 "`backbone`: block1 to block3"),
    (["hidden3"], "knn.embeddings: hidden3 - the projector"),
])
def test_an_embedding_the_models_do_not_have_is_named(embeddings, key):
    assert key in problems(knn={"embeddings": embeddings})
    assert problems(knn={"embeddings": ["block3", "hidden1", "projector"]}) == ""


def test_a_size_the_synthetic_benchmark_cannot_hold_is_refused_naming_both_keys():
    """The demo's 700 images per class hold A and B of at most 175 each (a held-out set of
    as many as A and B together is taken first): the split job would fail at 176. From 150
    on, the 100 public test images take the rest, and the k-NN would have no public set."""
    assert problems(split={"npc": [50, 149]}) == ""
    assert "knn.k: 20 neighbours" in problems(split={"npc": [50, 150]})
    said = problems(split={"npc": [50, 176]})
    assert "split.npc: 176 images per class" in said and \
        "dataset.images_per_class = 700" in said
    assert problems(split={"npc": [250], "heldout_fraction": 0.1}) == ""
    assert "split.npc: 330" in problems(split={"npc": [330], "heldout_fraction": 0.1})
    said = problems(knn={"k": [5000]})
    assert "knn.k: 5000 neighbours" in said and "leaves 4000 public images" in said


def test_naive_bayes_on_real_data_needs_a_tags_file(tmp_path):
    real = {"name": "folder", "root": str(tmp_path)}
    assert "onemodel.classifiers: naive_bayes needs crop tags" in problems(dataset=real)
    assert "naive_bayes" not in problems(dataset=real, onemodel={"classifiers": ["resnet"]})


def test_every_problem_is_listed_at_once():
    said = problems(train={"methods": ["external"]}, onemodel={"tags": "nowhere.csv"})
    assert "onemodel.tags" in said and "train.methods" in said


def merged(base: dict, over: dict) -> dict:
    """`over` layered on `base` as Snakemake layers config files (nested keys merged)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


@pytest.mark.parametrize("change, message", [
    ({}, ""),  # the paper-scale config itself is valid
    ({"root": "/nowhere/train"}, "dataset.root: /nowhere/train is not a directory"),
    ({"annotations": "/nowhere/bbox"}, "dataset.annotations: /nowhere/bbox is not a directory"),
    ({"boxes": "boxes.txt"}, "dataset.boxes: not used by a imagenet dataset"),
    ({"ingest": {"shard_rows": 10, "chunk_rows": 4}}, "dataset.ingest.chunk_rows"),
    ({"heldout_root": "VAL"}, ""),  # ImageNet's validation images as the held-out set
    ({"heldout_root": "/nowhere/val"}, "dataset.heldout_root: /nowhere/val is not a directory"),
    ({"heldout_root": "VAL", "split": {"heldout_fraction": None}},
     "split.heldout_fraction: None would hold out train images as well"),
])
def test_bad_dataset_settings_of_the_paper_scale_config_are_named(tmp_path, change, message):
    (tmp_path / "train").mkdir()
    (tmp_path / "bbox").mkdir()
    (tmp_path / "val").mkdir()
    paper = yaml.safe_load((REPO / "config" / "imagenet.yaml").read_text())
    change = dict(change)
    split = change.pop("split", {})
    if change.get("heldout_root") == "VAL":
        change["heldout_root"] = str(tmp_path / "val")
    config = merged(merged(BASE, paper), {"split": split, "dataset": {
        "root": str(tmp_path / "train"), "annotations": str(tmp_path / "bbox"), **change}})
    try:
        checks.validate(config, SCHEMA)
        checks.check(config, workdir=str(REPO))
        said = ""
    except Exception as err:  # noqa: BLE001 -- the message is what is tested
        said = str(err)
    assert message in said if message else said == ""


# Dataclass fields the schema does not set, or sets under another name or shape, and why.
NOT_IN_SCHEMA = {
    "TrainConfig": {"method", "seed", "until", "classes", "device"},  # per job / wildcards
    "DecoderConfig": {"weight_decay", "device"},  # fixed by the recipe; the rule's device
    "SynthConfig": {"n_classes", "n_details", "detail_min_frac", "detail_max_frac",
                    "object_min_frac", "object_max_frac", "noise_std"},  # see RENAMED
    "SplitConfig": {"npc", "max_npc"},  # one size of the split.npc list per job
    "IngestConfig": {"image_size"},  # dataset.image_size: 32 is the synthetic default
}
RENAMED = {("SynthConfig", "n_classes"): "classes", ("SynthConfig", "n_details"): "details"}


def schema_section(*path: str) -> dict:
    node = yaml.safe_load(open(SCHEMA))
    for key in path:
        node = node["properties"][key]
    return node["properties"]


def test_every_dataclass_default_is_the_schemas():
    """The schema is the single source of defaults: a config dataclass may leave a setting
    out, but where it has one of the schema's settings its default is the schema's."""
    import dataclasses

    from dejavu.onemodel.correlation import ResNetConfig
    from dejavu.data.ingest import IngestConfig
    from dejavu.rcdm import DecoderConfig
    from dejavu.data.split import SplitConfig
    from dejavu.data.synth import SynthConfig
    from dejavu.training.loader import LoaderConfig
    from dejavu.training.train import TrainConfig
    sections = {TrainConfig: ("train",), LoaderConfig: ("train", "loader"),
                DecoderConfig: ("rcdm",),
                ResNetConfig: ("onemodel", "resnet"), IngestConfig: ("dataset",),
                SynthConfig: ("dataset",), SplitConfig: ("split",)}
    differ = []
    for cls, path in sections.items():
        props = schema_section(*path)
        for field in dataclasses.fields(cls):
            name = RENAMED.get((cls.__name__, field.name), field.name)
            if field.name in NOT_IN_SCHEMA.get(cls.__name__, set()) and name == field.name:
                continue
            default = (field.default_factory() if field.default is dataclasses.MISSING
                       else field.default)
            default = list(default) if isinstance(default, tuple) else default
            if name not in props or props[name].get("default") != default:
                differ.append(f"{cls.__name__}.{field.name} = {default!r}, schema "
                              f"{'.'.join(path)}.{name}: "
                              f"{props.get(name, {}).get('default', 'missing')!r}")
    assert not differ, "\n".join(differ)


def schema_node(*path: str) -> dict:
    """The schema of a setting: `items` steps into a list's entries."""
    node = yaml.safe_load(open(SCHEMA))
    for key in path:
        node = node["items"] if key == "items" else node["properties"][key]
    return node


def test_every_copy_of_a_schema_enum_in_the_package_is_the_schemas():
    """The package keeps the names a setting may take where it checks them (stages run
    without the schema): each such copy names what the schema's enum names."""
    from dejavu.attack import index, knn
    from dejavu.core import models, optim
    from dejavu.data import crops, ingest
    from dejavu.onemodel import correlation
    from dejavu.training.methods import supervised
    copies = {
        ("train", "optimizer"): optim.OPTIMIZERS,
        ("model", "backbones", "items"): tuple(models.BACKBONES),
        ("dataset", "resize"): ingest.RESIZE_POLICIES,
        ("crop", "corner"): crops.CORNERS,
        ("knn", "backend"): ("auto", *knn.BACKENDS),
        ("knn", "metric"): index.METRICS,
        ("onemodel", "classifiers", "items"): correlation.CLASSIFIERS,
        ("onemodel", "train_on"): correlation.TRAIN_ON,
        ("onemodel", "resnet", "depth"): tuple(correlation.BLOCKS),
        ("external", "items", "normalize"): (*models.NORMALIZATIONS, None),
        ("train", "loss", "supervised", "head"): supervised.HEADS,
    }
    differ = [f"{'.'.join(path)}: schema {schema_node(*path)['enum']}, package {list(names)}"
              for path, names in copies.items() if schema_node(*path)["enum"] != list(names)]
    assert not differ, "\n".join(differ)


def test_method_options_are_the_schemas_in_the_catalog_and_the_loss_functions():
    """A built-in method's options and defaults: the schema's train.loss.<method>, the
    torch-free catalog's (which the method classes take theirs from: tests/test_methods.py)
    and any loss function's keyword defaults are the same."""
    import importlib
    import inspect

    from dejavu.training.methods.catalog import BUILT_IN
    differ = []
    for name, info in BUILT_IN.items():
        schema = {key: prop["default"] for key, prop in
                  schema_node("train", "loss", name)["properties"].items()}
        catalog = {k: list(v) if isinstance(v, tuple) else v for k, v in info.options.items()}
        if schema != catalog:
            differ.append(f"{name}: schema {schema}, catalog {catalog}")
        module = importlib.import_module(f"dejavu.training.methods.{name}")
        for fn_name, fn in inspect.getmembers(module, inspect.isfunction):
            for param in inspect.signature(fn).parameters.values():
                if param.name in catalog and param.default is not param.empty \
                        and param.default != catalog[param.name]:
                    differ.append(f"{name}: {fn_name}({param.name}={param.default!r}), "
                                  f"catalog {catalog[param.name]!r}")
    assert not differ, "\n".join(differ)


def test_wildcard_constraints_come_from_the_schemas_enums():
    """A new crop mode, embedding or classifier is added in the schema alone (embeddings:
    its pattern)."""
    import re
    from dejavu.config import wildcard_constraints
    constraints = wildcard_constraints(SCHEMA)
    assert constraints["crop"] == "periphery|corner"
    embedding = re.compile(constraints["embedding"])
    assert all(embedding.fullmatch(e) for e in ("projector", "backbone", "block3", "hidden12"))
    assert not any(embedding.fullmatch(e) for e in ("block0", "layer1", "projector-k5"))
    assert constraints["classifier"] == "resnet|naive_bayes"
    assert constraints["part"] == "public|crops-(periphery|corner)"


def test_external_models_are_resolved_once_from_the_schema_and_the_model_section():
    config = copy.deepcopy(BASE)
    config["external"] = [{"name": "mine", "checkpoint": "w.pt", "architecture": "resnet18"},
                          {"name": "wide", "checkpoint": "v.pt", "architecture": "convnet",
                           "width": 64, "small_stem": False, "train_size": 25, "epoch": 3}]
    models = checks.external_models(config, SCHEMA)
    assert models["mine"] == {
        "name": "mine", "checkpoint": "w.pt", "architecture": "resnet18", "projector": None,
        "normalize": None, "key": "auto", "prefix": "auto", "train_size": 50, "epoch": 1,
        "width": 16, "small_stem": True, "patch_size": 4}  # model.* and split.npc[0]
    wide = models["wide"]
    assert (wide["width"], wide["small_stem"], wide["train_size"], wide["epoch"]) == \
        (64, False, 25, 3)


def variant_problems(*entries) -> str:
    """What parsing the Snakefile would say of config.yaml with `variants: entries`."""
    config = copy.deepcopy(BASE)
    config["variants"] = list(entries)
    try:
        checks.validate(config, SCHEMA)
        variants.variants(config, SCHEMA, workdir=str(REPO))
    except Exception as err:  # noqa: BLE001 -- the message is what is tested
        return str(err)
    return ""


@pytest.mark.parametrize("entry, key", [
    ({"name": "x", "train": {"weight_decy": 0.1}},
     "variants[x].train: Additional properties are not allowed ('weight_decy'"),
    ({"name": "x", "train": {"lr": -1}}, "variants[x].train.lr: -1 is less than"),
    ({"name": "x", "train": {"loss": {"vicreg": {"sim_coef": 1}}}},
     "variants[x].train.loss.vicreg: Additional properties are not allowed ('sim_coef'"),
    ({"name": "x", "model": {"projector": [64, 1]}},
     "variants[x]: model.projector: vicreg needs a projector output"),
    ({"name": "x", "train": {"methods": ["simclr"]}}, "variants[x].train.methods: shared"),
    ({"name": "x", "train": {"epochs": 10}}, "variants[x].train.epochs: shared"),
    ({"name": "x", "train": {"checkpoints": [401]}},
     "variants[x]: train.checkpoints: epochs [401] exceed train.epochs (400)"),
    ({"name": "x", "model": {"backbones": ["resnet18"]}}, "variants[x].model.backbones"),
    ({"name": "default", "train": {"lr": 0.1}}, "variants.0.name: 'default'"),
    ({"name": "x", "optimizer": "sgd"}, "'optimizer' was unexpected"),
])
def test_a_bad_variant_is_named_with_its_key(entry, key):
    assert key in variant_problems(entry)


def test_variants_merge_into_the_config_key_by_key():
    config = copy.deepcopy(BASE)
    config["variants"] = [{"name": "soft", "train": {"loss": {"vicreg": {"sim_coeff": 5.0}},
                                                    "augment": {"scale_min": 0.5}}},
                          {"name": "wide", "model": {"width": 32}}]
    checks.validate(config, SCHEMA)
    configs = variants.variants(config, SCHEMA, workdir=str(REPO))
    assert list(configs) == ["default", "soft", "wide"]
    assert configs["default"] is config
    soft = configs["soft"]["train"]
    assert soft["loss"]["vicreg"] == {**config["train"]["loss"]["vicreg"], "sim_coeff": 5.0}
    assert soft["augment"] == {**config["train"]["augment"], "scale_min": 0.5}
    assert soft["lr"] == config["train"]["lr"] and configs["soft"]["model"] == config["model"]
    assert configs["wide"]["model"]["width"] == 32 and config["model"]["width"] == 16
    assert "a second variant" in variant_problems({"name": "w"}, {"name": "w"})


def test_a_shared_dataset_store_made_from_other_settings_is_refused(tmp_path):
    import json
    config = copy.deepcopy(BASE)
    checks.validate(config, SCHEMA)
    config["dataset"]["store"] = str(tmp_path / "data")
    assert checks.store_problems(config, str(REPO)) == []  # nothing there yet
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / checks.STORE_SOURCE).write_text(
        json.dumps(checks.dataset_settings(config, str(REPO))))
    assert checks.store_problems(config, str(REPO)) == []  # the same settings: reused
    config["dataset"]["ingest"]["jobs"] = 7  # how the work is split changes no image
    assert checks.store_problems(config, str(REPO)) == []
    config["dataset"]["seed"] = 3
    said = " ".join(checks.store_problems(config, str(REPO)))
    assert f"dataset.store: {tmp_path / 'data'} holds a dataset made from other" in said
    assert "dataset.seed: 0 there, 3 here" in said


def test_the_vlm_records_files_are_checked_before_any_job():
    said = problems(vlm={"enabled": True, "data": {"source": "coco",
                                                   "coco": {"captions": "c.json"}}})
    assert "vlm.data.coco.captions: c.json is not a file" in said
    assert "vlm.data.coco.instances: needed for vlm.data.source coco" in said
    assert "vlm.data.jsonl: needed" in problems(vlm={"enabled": True,
                                                     "data": {"source": "jsonl"}})

