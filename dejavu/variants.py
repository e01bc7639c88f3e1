"""Which settings train each model: variants, numeric sweeps and each method's recipe.

The config as written is the variant `default`. A method's recipe (`recipes.<method>`)
changes the train and model sections for that method alone, in every variant; a variant
(`variants:`) changes them again for the methods it names; a sweep (`sweeps:`) is a list of
variants, one per value of one setting. A model trains with

    config  <-  recipes[method]  <-  variant

each merged key by key (`merged`). Settings that fix the DAG's shape or the training states
it keeps stay shared by every variant and recipe (`VARIANT_AXES`)."""

from __future__ import annotations

import copy

from .config import ConfigError, _at, check, merged, schema_of

DEFAULT_VARIANT = "default"  # the config as written
SECTIONS = ("train", "model")  # what a recipe, variant or sweep may change
# Settings every variant and recipe shares: the sweep axes (a variant is one point of the
# other settings, trained at every point of them), what fixes the training states the train
# rule writes (epochs are compared through train.checkpoints, from one training run) and
# how a training job runs (its devices, processes, loader and time limit)
VARIANT_AXES = {"train": ("methods", "seeds", "method_modules", "epochs", "state_every",
                          "gpus", "processes", "loader", "max_runtime", "continuations"),
                "model": ("backbones",)}
# ... and which epochs are evaluated, which is a variant's and the same for all its methods
RECIPE_FIXED = {"train": (*VARIANT_AXES["train"], "checkpoints"), "model": ("backbones",)}
AXIS_HINT = {"train.epochs": "compare epochs with train.checkpoints, from one training run",
             "train.checkpoints": "a variant's evaluated epochs are the same for its methods"}


def overlaid(config: dict, overlay: dict) -> dict:
    """`config` with `overlay`'s train and model keys merged in (a copy: nothing shared)."""
    return {**config, **{section: copy.deepcopy(merged(config[section],
                                                       overlay.get(section, {})))
                         for section in SECTIONS}}


def value_name(value) -> str:
    """A sweep value as a name: 0.1 -> 0p1, -2 -> m2, 25.0 -> 25, [512, 256] -> 512x256."""
    if isinstance(value, list):
        return "x".join(map(value_name, value))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).replace("-", "m").replace(".", "p").replace("+", "")


def nested(path: list[str], value) -> dict:
    """{'a': {'b': value}} from ['a', 'b']."""
    for key in reversed(path):
        value = {key: value}
    return value


def setting_of(config: dict, setting: str):
    """The value at a dotted key (`train.loss.vicreg.sim_coeff`), None where it is unset."""
    node = config
    for key in setting.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def own_values(config: dict, setting: str, methods: list[str]) -> dict[str, object]:
    """The value of `setting` each method's default run trains with (its recipe's, else
    the config's)."""
    return {m: setting_of(overlaid(config, config.get("recipes", {}).get(m, {})), setting)
            for m in methods}


def sweep_entries(config: dict) -> list[dict]:
    """Each sweep as variant entries, one per value (named <name>_<value>), leaving out a
    value that every method of the sweep already trains with in its default run (that run
    is the sweep's point there: nothing is trained twice). Each entry keeps its `sweep`
    (the setting) and `value`."""
    out = []
    for sweep in config.get("sweeps", []):
        section, *path = sweep["setting"].split(".")
        methods = sweep.get("methods") or config["train"]["methods"]
        base = own_values(config, sweep["setting"], methods).values()
        name = sweep.get("name") or path[-1]
        for value in sweep["values"]:
            if all(b == value for b in base):
                continue
            out.append({"name": f"{name}_{value_name(value)}", "methods": methods,
                        section: nested(path, value), "sweep": sweep["setting"],
                        "value": value})
    return out


def entries(config: dict) -> list[dict]:
    """Every variant entry: those written and those of the sweeps."""
    return [*config.get("variants", []), *sweep_entries(config)]


def fixed_keys(overlay: dict, fixed: dict) -> list[str]:
    return [f"{section}.{key}" for section, keys in fixed.items()
            for key in keys if key in overlay.get(section, {})]


def _checked(config: dict, where: str, validator, workdir: str) -> list[str]:
    """Problems of a derived config (schema and `check`), each named from `where`."""
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        return [f"{where}.{_at(e)}" for e in errors]
    try:
        check(config, workdir)
    except ConfigError as err:
        return [f"{where}: {line.strip()}" for line in str(err).splitlines()[1:]]
    return []


def variants(config: dict, schema_path: str, workdir: str = ".") -> dict[str, dict]:
    """The config of every variant by name, `default` (the config as written) first: each
    overlay merged into the train and model sections, then checked like a config of its own
    (the schema and `check`). Raises ConfigError naming the variant and the key."""
    import jsonschema
    validator = jsonschema.Draft202012Validator(schema_of(schema_path))
    configs, problems = {DEFAULT_VARIANT: config}, []
    for entry in entries(config):
        name = entry["name"]
        where = f"variants[{name}]" if "sweep" not in entry else f"sweeps[{entry['sweep']}]"
        if name in configs:
            problems.append(f"{where}: a second variant named {name}")
            continue
        shared = fixed_keys(entry, VARIANT_AXES)
        if shared:
            problems.append(f"{where}.{shared[0]}: shared by every variant, set it at the top "
                            f"level ({AXIS_HINT.get(shared[0], 'a sweep axis of its own')})")
            continue
        strangers = [m for m in entry.get("methods") or [] if m not in config["train"]["methods"]]
        if strangers:
            problems.append(f"{where}.methods: {strangers} not in train.methods")
            continue
        variant = overlaid(config, entry)
        # the methods it trains (every one unless it names some)
        variant["train"]["methods"] = entry.get("methods") or config["train"]["methods"]
        found = _checked(variant, where, validator, workdir)
        problems += found
        if not found:
            configs[name] = variant
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return configs


def model_settings(config: dict, configs: dict[str, dict], schema_path: str,
                   workdir: str = ".") -> dict[tuple[str, str], dict]:
    """The settings each (variant, method) trains with: the variant's config where the
    method has no recipe, else config <- recipe <- the variant's overlay, checked like a
    config of its own. Raises ConfigError naming the recipe and the key."""
    import jsonschema
    recipes = config.get("recipes", {})
    problems = []
    for method, recipe in recipes.items():  # a recipe of a method not trained is unused
        if method not in known_methods():
            problems.append(f"recipes.{method}: no method is called {method!r}; known: "
                            f"{known_methods()}")
        fixed = fixed_keys(recipe, RECIPE_FIXED)
        if fixed:
            problems.append(f"recipes.{method}.{fixed[0]}: shared by every method "
                            f"({AXIS_HINT.get(fixed[0], 'a sweep axis')})")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    validator = jsonschema.Draft202012Validator(schema_of(schema_path))
    overlays = {e["name"]: e for e in entries(config)}
    settings = {}
    for name, variant in configs.items():
        for method in variant["train"]["methods"]:
            if method not in recipes:
                settings[name, method] = variant
                continue
            own = overlaid(overlaid(config, recipes[method]), overlays.get(name, {}))
            own["train"]["methods"] = [method]
            where = f"recipes.{method}" + ("" if name == DEFAULT_VARIANT
                                           else f" (in variant {name})")
            # checked as a config of its own, in which the method has no recipe left
            found = _checked({**own, "recipes": {}}, where, validator, workdir)
            problems += found
            settings[name, method] = own
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return settings


def known_methods() -> list[str]:
    """The built-in methods and those `check` registered from train.method_modules."""
    from .training import methods
    return methods.names()


def flat(overlay: dict, prefix: str = "") -> dict[str, object]:
    """{'train.lr': 0.3, 'model.projector': [...]} from nested keys."""
    out = {}
    for key, value in overlay.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def recipe_text(config: dict, method: str) -> str:
    """What a method's recipe changes, as `key=value` pairs (`shared`: nothing)."""
    recipe = {s: v for s, v in config.get("recipes", {}).get(method, {}).items() if v}
    if not recipe:
        return "shared"
    return " ".join(f"{key}={value}".replace(" ", "") for key, value in flat(recipe).items())


def sweep_specs(config: dict) -> list[dict]:
    """Each sweep as the report draws it: its setting, the methods swept, the value each
    method's default run has (`base`) and the value of each sweep variant (`points`)."""
    specs = []
    for sweep in config.get("sweeps", []):
        methods = sweep.get("methods") or config["train"]["methods"]
        base = own_values(config, sweep["setting"], methods)
        points = {e["name"]: e["value"] for e in sweep_entries({**config, "sweeps": [sweep]})}
        specs.append({"setting": sweep["setting"], "methods": methods, "base": base,
                      "points": points})
    return specs


def run_labels(config: dict) -> dict:
    """What the summary says of each model beyond its variant: its method's recipe and, for
    a sweep's variants, the setting and value."""
    return {"recipes": {m: recipe_text(config, m) for m in config["train"]["methods"]},
            "sweeps": [{k: spec[k] for k in ("setting", "points")}
                       for spec in sweep_specs(config)]}


# What every VLM variant shares (vlm.variants): the DAG's shape and how a training job runs
VLM_SHARED = ("seeds", "epochs", "checkpoints", "processes", "max_runtime", "continuations")


def vlm_variants(config: dict, schema_path: str) -> dict[str, dict]:
    """The vlm section each VLM variant trains and tests with, by name, `default` (the
    section as written) first: each entry's train and model settings merged into the
    section's, checked against the schema. Raises ConfigError naming the entry and the key."""
    import jsonschema
    vlm = config["vlm"]
    out, problems = {DEFAULT_VARIANT: vlm}, []
    validator = jsonschema.Draft202012Validator(schema_of(schema_path))
    for i, entry in enumerate(vlm.get("variants", [])):
        name, where = entry["name"], f"vlm.variants[{i}]"
        shared = [key for key in VLM_SHARED if key in entry.get("train", {})]
        if name in out:
            problems.append(f"{where}.name: a second variant named {name}")
        elif shared:
            problems.append(f"{where}.train.{shared[0]}: shared by every variant, set it in "
                            f"vlm.train")
        else:
            own = {**vlm, **{s: merged(vlm[s], entry.get(s, {})) for s in ("train", "model")},
                   "variants": []}
            found = [f"{where}: {_at(e)}" for e in validator.iter_errors({**config, "vlm": own})]
            problems += found
            out[name] = own
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return out
