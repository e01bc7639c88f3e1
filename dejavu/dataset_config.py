"""Config checks of the dataset: the store a config points at, the paths of a real dataset,
and the sizes the built-in synthetic benchmark can hold. Run by `dejavu.config.check`."""

from __future__ import annotations

from pathlib import Path


# The dataset settings a store's content follows from, by dataset kind (how ingest jobs
# split the work, their chunking and strict mode change no image or row)
STORE_SETTINGS = {
    "synthetic": ("name", "classes", "images_per_class", "image_size", "correlation",
                  "details", "detail_size", "seed"),
    "real": ("name", "root", "annotations", "class_list", "list", "boxes", "resize", "exif",
             "boxes_outside", "image_size", "heldout_root", "heldout_annotations"),
}
# the dataset keys that are paths (resolved against the working directory)
PATHS = ("root", "annotations", "class_list", "list", "boxes", "heldout_root",
         "heldout_annotations")
STORE_SOURCE = "source.json"  # in the store folder: the settings it was made from


def dataset_store(config: dict) -> str:
    """The folder of the dataset store: `dataset.store`, or <results>/<name>/dataset."""
    d = config["dataset"]
    return d.get("store") or f"{config['results']}/{d['name']}/dataset"


def dataset_settings(config: dict, workdir: str = ".") -> dict:
    """What the dataset store is made from (paths absolute): written beside the store and
    compared by every later config that points `dataset.store` at it."""
    d = config["dataset"]
    keys = STORE_SETTINGS["synthetic" if d["name"] == "synthetic" else "real"]
    settings = {key: d.get(key) for key in keys}
    for key in PATHS:
        if settings.get(key):
            settings[key] = str((Path(workdir) / settings[key]).resolve())
    return settings


def store_problems(config: dict, workdir: str) -> list[str]:
    """A dataset store made from other settings is never reused (nor overwritten: another
    config's runs read it)."""
    import json
    made_from = Path(workdir) / dataset_store(config) / STORE_SOURCE
    if not made_from.is_file():
        return []
    there, here = json.loads(made_from.read_text()), dataset_settings(config, workdir)
    differ = [f"dataset.{key}: {there.get(key)!r} there, {here.get(key)!r} here"
              for key in sorted(set(there) | set(here)) if there.get(key) != here.get(key)]
    if not differ:
        return []
    return [f"dataset.store: {dataset_store(config)} holds a dataset made from other "
            f"settings ({'; '.join(differ)}); point dataset.store at another folder, or "
            f"delete that one to remake it"]


def heldout_problems(config: dict) -> list[str]:
    """Validation images as the held-out set replace the one taken from the train tree."""
    fraction = config["split"]["heldout_fraction"]
    if config["dataset"].get("heldout_root") and fraction != 0:
        return [f"split.heldout_fraction: {fraction} would hold out train images as well as "
                f"the validation images of dataset.heldout_root; set it to 0.0"]
    return []


def synthetic_split_problems(config: dict) -> list[str]:
    """The built-in benchmark's sizes are known before it is generated (every image has a
    box): split one class the way the split job will, and refuse sizes it cannot hold."""
    import numpy as np

    from .data.split import SplitConfig, split_class
    dataset, split = config["dataset"], config["split"]
    if dataset["name"] != "synthetic":
        return []
    per_class, largest = dataset["images_per_class"], max(split["npc"])
    cfg = SplitConfig(npc=largest, heldout_fraction=split["heldout_fraction"],
                      public_test_per_class=split["public_test_per_class"], seed=split["seed"])
    try:
        sets = split_class(np.arange(per_class), np.ones(per_class, bool), cfg, 0)
    except ValueError:  # A and B would have to share images, and only box-less ones can
        return [f"split.npc: {largest} images per class in each of A and B do not fit in "
                f"dataset.images_per_class = {per_class} (the held-out set is taken first, "
                f"and A and B share no synthetic image); raise dataset.images_per_class or "
                f"lower split.npc"]
    public = dataset["classes"] * len(sets["public"])
    k = max(config["knn"]["k"])
    if k > public:
        return [f"knn.k: {k} neighbours, but dataset.images_per_class = {per_class} leaves "
                f"{public} public images once A, B, the held-out set and "
                f"split.public_test_per_class are taken; lower knn.k or raise "
                f"dataset.images_per_class"]
    return []


def dataset_problems(dataset: dict, workdir: str) -> list[str]:
    """Paths of a real dataset: present, of the right kind, before any job starts."""
    name = dataset["name"]
    if name == "synthetic":
        return []
    problems = []
    root = dataset.get("root")
    if not root:
        return [f"dataset.root: a {name} dataset needs the folder of its images"]
    if not (Path(workdir) / root).is_dir():
        problems.append(f"dataset.root: {root} is not a directory")
    kinds = {"annotations": "dir", "class_list": "file", "list": "file", "boxes": "file",
             "heldout_root": "dir", "heldout_annotations": "dir"}
    allowed = {"imagenet": ("annotations", "class_list", "heldout_root", "heldout_annotations"),
               "folder": ("class_list", "list", "boxes")}[name]
    for key, kind in kinds.items():
        value = dataset.get(key)
        if value is None:
            continue
        if key not in allowed:
            problems.append(f"dataset.{key}: not used by a {name} dataset")
        elif kind == "dir" and not (Path(workdir) / value).is_dir():
            problems.append(f"dataset.{key}: {value} is not a directory")
        elif kind == "file" and not (Path(workdir) / value).is_file():
            problems.append(f"dataset.{key}: {value} is not a file")
    boxes = dataset.get("boxes")
    if boxes and not boxes.endswith((".json", ".csv")):
        problems.append(f"dataset.boxes: {boxes} must be a COCO .json or a .csv")
    ingest = dataset["ingest"]
    if ingest["shard_rows"] % ingest["chunk_rows"]:
        problems.append(f"dataset.ingest.chunk_rows: {ingest['chunk_rows']} does not divide "
                        f"dataset.ingest.shard_rows = {ingest['shard_rows']}")
    return problems
