"""Variants, sweeps and each method's recipe as the Snakefile resolves them
(`dejavu.variants`): what each model trains with, and every bad entry named by its key."""

import copy

import pytest
import yaml

from conftest import REPO
from dejavu import config as checks
from dejavu import variants

pytestmark = pytest.mark.unit

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
BASE = yaml.safe_load((REPO / "config.yaml").read_text())


def with_methods(*methods, **sections) -> dict:
    config = copy.deepcopy(BASE)
    config["train"]["methods"] = list(methods)
    config.update(copy.deepcopy(sections))
    checks.validate(config, SCHEMA)
    return config


def settings_problems(config: dict) -> str:
    try:
        variants.model_settings(config, variants.variants(config, SCHEMA, str(REPO)), SCHEMA,
                                str(REPO))
    except checks.ConfigError as err:
        return str(err)
    return ""


def test_a_recipe_is_its_methods_alone_and_variants_merge_over_it():
    config = with_methods(
        "vicreg", "simclr",
        recipes={"simclr": {"model": {"projector": [64, 64, 16]},
                            "train": {"lr": 0.3, "loss": {"simclr": {"temperature": 0.15}}}}},
        variants=[{"name": "slow", "train": {"lr": 0.01}}])
    configs = variants.variants(config, SCHEMA, str(REPO))
    settings = variants.model_settings(config, configs, SCHEMA, str(REPO))
    assert sorted(settings) == [("default", "simclr"), ("default", "vicreg"),
                                ("slow", "simclr"), ("slow", "vicreg")]
    assert settings["default", "vicreg"] is config  # no recipe: the config as written
    simclr = settings["default", "simclr"]
    assert simclr["model"]["projector"] == [64, 64, 16] and simclr["train"]["lr"] == 0.3
    assert simclr["train"]["loss"]["simclr"]["temperature"] == 0.15
    assert simclr["train"]["weight_decay"] == config["train"]["weight_decay"]  # shared
    # a variant over a recipe: the variant's key wins, the recipe's others stay
    slow = settings["slow", "simclr"]
    assert slow["train"]["lr"] == 0.01 and slow["model"]["projector"] == [64, 64, 16]
    assert settings["slow", "vicreg"]["model"]["projector"] == config["model"]["projector"]
    assert config["model"]["projector"] == BASE["model"]["projector"]  # nothing shared
    assert variants.recipe_text(config, "vicreg") == "shared"
    # a recipe of a method this config does not train is unused (config/paper/recipes.yaml
    # holds all six for every figure's overlay)
    assert settings_problems({**config, "recipes": {**config["recipes"], "byol": {
        "train": {"lr": 0.1}}}}) == ""
    assert variants.recipe_text(config, "simclr") == (
        "model.projector=[64,64,16] train.lr=0.3 train.loss.simclr.temperature=0.15")


@pytest.mark.parametrize("recipes, key", [
    ({"bayol": {"train": {"lr": 0.1}}}, "recipes.bayol: no method is called 'bayol'"),
    ({"simclr": {"train": {"epochs": 5}}}, "recipes.simclr.train.epochs: shared by every"),
    ({"simclr": {"train": {"checkpoints": [5]}}}, "recipes.simclr.train.checkpoints: shared"),
    ({"simclr": {"model": {"backbones": ["resnet18"]}}}, "recipes.simclr.model.backbones"),
    ({"simclr": {"train": {"lr": -1}}}, "recipes.simclr.train.lr: -1 is less than"),
    ({"simclr": {"train": {"loss": {"simclr": {"temprature": 1}}}}},
     "recipes.simclr.train.loss.simclr: Additional properties are not allowed"),
    ({"vicreg": {"model": {"projector": [64, 1]}}},
     "recipes.vicreg: model.projector: vicreg needs a projector output"),
])
def test_a_bad_recipe_is_named_with_its_method_and_key(recipes, key):
    assert key in settings_problems(with_methods("vicreg", "simclr", recipes=recipes))


@pytest.mark.parametrize("mae_projector, key", [
    ([], ""), ([8], "recipes.mae: model.projector: mae trains no projector")])
def test_a_method_without_a_projector_trains_beside_others_through_its_recipe(mae_projector,
                                                                               key):
    """VICReg with its projector and MAE without one, on the same ViT backbones: the
    top-level projector is VICReg's, MAE's recipe says it has none."""
    config = with_methods("vicreg", "mae", recipes={"mae": {"model": {"projector": mae_projector}}})
    config["model"]["backbones"] = ["vit_mini"]
    checks.check(config, str(REPO))
    found = settings_problems(config)
    assert (key in found) if key else found == ""


def test_a_sweep_is_one_variant_per_value_leaving_out_the_default_runs_own():
    config = with_methods("vicreg", "simclr", sweeps=[
        {"setting": "train.loss.vicreg.sim_coeff", "values": [5, 10.0, 25, 0.5],
         "methods": ["vicreg"]},
        {"setting": "model.projector", "values": [[64, 64], [128]], "name": "head"}])
    configs = variants.variants(config, SCHEMA, str(REPO))
    # 25 is VICReg's default coefficient: its default run is that point
    assert list(configs) == ["default", "sim_coeff_5", "sim_coeff_10", "sim_coeff_0p5",
                             "head_64x64", "head_128"]
    assert configs["sim_coeff_0p5"]["train"]["loss"]["vicreg"]["sim_coeff"] == 0.5
    assert configs["sim_coeff_0p5"]["train"]["methods"] == ["vicreg"]
    assert configs["head_128"]["model"]["projector"] == [128]
    assert configs["head_128"]["train"]["methods"] == ["vicreg", "simclr"]
    specs = variants.sweep_specs(config)
    assert specs[0]["base"] == {"vicreg": 25.0}
    assert specs[0]["points"] == {"sim_coeff_5": 5, "sim_coeff_10": 10.0, "sim_coeff_0p5": 0.5}


@pytest.mark.parametrize("sweep, key", [
    ({"setting": "train.epochs", "values": [10, 20]},
     "sweeps[train.epochs].train.epochs: shared by every variant"),
    ({"setting": "train.weight_decy", "values": [0.1]},
     "sweeps[train.weight_decy].train: Additional properties are not allowed"),
    ({"setting": "train.lr", "values": [-0.1]}, "sweeps[train.lr].train.lr: -0.1 is less"),
    ({"setting": "lr", "values": [0.1]}, "sweeps.0.setting: 'lr' does not match"),
    ({"setting": "train.lr", "values": [0.1], "methods": ["dino"]},
     "sweeps[train.lr].methods: ['dino'] not in train.methods"),
])
def test_a_bad_sweep_is_named_with_its_setting(sweep, key):
    config = copy.deepcopy(BASE)
    config["sweeps"] = [sweep]
    try:
        checks.validate(config, SCHEMA)
        variants.variants(config, SCHEMA, str(REPO))
        found = ""
    except checks.ConfigError as err:
        found = str(err)
    assert key in found
