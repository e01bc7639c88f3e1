"""The VLM test's variants and tested epochs as the Snakefile checks them (vlm.variants,
vlm.train.checkpoints; dejavu/variants.py's vlm_variants)."""

import copy

import pytest
import yaml

from conftest import REPO
from dejavu import config as checks
from dejavu import variants

pytestmark = pytest.mark.unit

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
BASE = yaml.safe_load((REPO / "config.yaml").read_text())


def vlm_variant_problems(*entries, **train) -> str:
    """What the Snakefile would say of vlm.variants `entries` (and vlm.train `train`)."""
    config = copy.deepcopy(BASE)
    config["vlm"] = {"enabled": True, "variants": list(entries), "train": train}
    try:
        checks.validate(config, SCHEMA)
        checks.check(config, workdir=str(REPO))
        variants.vlm_variants(config, SCHEMA)
    except checks.ConfigError as err:
        return str(err)
    return ""


@pytest.mark.parametrize("entry, key", [
    ({"name": "x", "train": {"lr": -1}}, "vlm.variants[0]: vlm.train.lr: -1 is less than"),
    ({"name": "x", "model": {"widht": 8}}, "vlm.variants[0]: vlm.model: Additional properties"),
    ({"name": "x", "train": {"epochs": 3}}, "vlm.variants[0].train.epochs: shared"),
    ({"name": "x", "train": {"checkpoints": [1]}}, "vlm.variants[0].train.checkpoints: shared"),
    ({"name": "default"}, "vlm.variants.0.name"),
    ({"name": "x", "optimizer": "sgd"}, "'optimizer' was unexpected"),
])
def test_a_bad_vlm_variant_is_named_with_its_key(entry, key):
    assert key in vlm_variant_problems(entry)


def test_vlm_variants_merge_into_the_vlm_section_and_checkpoints_precede_the_last_epoch():
    config = copy.deepcopy(BASE)
    config["vlm"] = {"enabled": True, "variants": [
        {"name": "wide", "model": {"width": 8}, "train": {"loss": {"text_depth": 3}}}]}
    checks.validate(config, SCHEMA)
    configs = variants.vlm_variants(config, SCHEMA)
    assert list(configs) == ["default", "wide"] and configs["default"] is config["vlm"]
    wide = configs["wide"]
    assert wide["model"] == {**config["vlm"]["model"], "width": 8}
    assert wide["train"] == {**config["vlm"]["train"], "loss": {"text_depth": 3}}
    assert "a second variant named wide" in vlm_variant_problems({"name": "wide"},
                                                                 {"name": "wide"})
    assert vlm_variant_problems(epochs=5, checkpoints=[2, 4]) == ""
    assert "vlm.train.checkpoints: epochs [5] are not before vlm.train.epochs (5)" in \
        vlm_variant_problems(epochs=5, checkpoints=[2, 5])
