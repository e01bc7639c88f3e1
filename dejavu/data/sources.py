"""Listing real datasets: which files, which class, which boxes (definitions §1–2).

An adapter turns a dataset on disk into a *manifest* -- one row per image to ingest: id,
path, label, boxes (half-open [x0, y0, x1, y1] in pixels of the file as stored on disk) and
the size the annotation claims (0 when unknown) -- plus the rejects it found on the way.
Nothing here decodes an image; `dejavu.data.ingest` does that in shard jobs.

Adapters:
- `imagenet` (`dejavu.data.imagenet`): ILSVRC-2012 train layout
  `train/<wnid>/<wnid>_<n>.JPEG`, localization XMLs `<annotations>/<wnid>/<wnid>_<n>.xml`
  (PASCAL VOC), class list `LOC_synset_mapping.txt` (`<wnid> <name>` per line, line order =
  class index); optionally the validation images as the held-out pool.
- `folder`: the user's images, one folder per class under `root` or a list file
  (`path,label`), with boxes from a COCO JSON or a CSV (`path,label,x0,y0,x1,y1`).

Every problem becomes a row of the rejects table (`Rejects`): stage, id, path, kind,
action, reason. `action` says what happened to the data: the image was skipped, a box was
clipped or dropped, the image kept without boxes, or the image converted. In strict mode the
first problem that loses or changes data raises `BadInput` naming the file.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
REJECT_COLUMNS = ("stage", "id", "path", "kind", "action", "reason")
MANIFEST_COLUMNS = ("id", "path", "label", "boxes", "ann_width", "ann_height", "pool")
# pool: "train" (split into A, B and the public sets) or "heldout" (validation images, the
# held-out control only; definitions §1)
POOLS = ("train", "heldout")
# actions that leave the data as it was meant to be (or touch no image: a stray non-image
# file); strict mode lets them pass
HARMLESS = frozenset({"converted", "ignored"})


class BadInput(ValueError):
    """Raised in strict mode at the first input problem, naming the file."""


@dataclass
class Rejects:
    """Collects reject rows; in strict mode raises at the first harmful one."""

    stage: str
    strict: bool = False
    rows: list[dict] = field(default_factory=list)
    key: str = "dataset.strict"  # the setting a strict-mode error names

    def add(self, path, kind: str, action: str, reason: str, image_id: str = "") -> None:
        row = {"stage": self.stage, "id": image_id, "path": str(path), "kind": kind,
               "action": action, "reason": reason}
        if self.strict and action not in HARMLESS:
            raise BadInput(f"{path}: {reason} (strict mode; set {self.key}: false to "
                           f"skip and record such inputs)")
        self.rows.append(row)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(REJECT_COLUMNS))


@dataclass(frozen=True)
class BoxRules:
    outside: str = "clip"  # a box reaching outside the image: clip it, or reject (drop) it


def check_box(box, width: int, height: int, rules: BoxRules, rejects: Rejects, path,
              image_id: str) -> list[int] | None:
    """The box as int [x0, y0, x1, y1] within the image, or None if it is rejected."""
    x0, y0, x1, y1 = box
    if not all(math.isfinite(v) for v in box):
        rejects.add(path, "box_invalid", "box dropped", f"box {box} is not finite", image_id)
        return None
    x0, y0, x1, y1 = math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)
    if x1 <= x0 or y1 <= y0:
        rejects.add(path, "box_inverted", "box dropped",
                    f"box {[x0, y0, x1, y1]} is empty or inverted", image_id)
        return None
    if width and height and (x0 < 0 or y0 < 0 or x1 > width or y1 > height):
        clipped = [max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)]
        if rules.outside == "reject" or clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            rejects.add(path, "box_outside", "box dropped",
                        f"box {[x0, y0, x1, y1]} reaches outside the {width}x{height} image",
                        image_id)
            return None
        rejects.add(path, "box_outside", "box clipped",
                    f"box {[x0, y0, x1, y1]} reaches outside the {width}x{height} image; "
                    f"clipped to {clipped}", image_id)
        return clipped
    return [x0, y0, x1, y1]


def _drop_duplicates(manifest: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
    """Keep the first file (in path order) of every id; record the others."""
    manifest = manifest.sort_values("path", kind="stable")
    dup = manifest["id"].duplicated(keep="first")
    for path, image_id in zip(manifest.loc[dup, "path"], manifest.loc[dup, "id"]):
        first = manifest.loc[(manifest["id"] == image_id) & ~dup, "path"].iloc[0]
        rejects.add(path, "duplicate_id", "image skipped",
                    f"file id {image_id!r} already used by {first}", image_id)
    return manifest[~dup].sort_values("id", kind="stable").reset_index(drop=True)


def _list_images(folder: Path, rejects: Rejects) -> list[Path]:
    """The image files of a class folder, sorted; every other entry is recorded: a
    directory or a dangling link named like an image (skipped), anything else (ignored)."""
    images = []
    for entry in sorted(folder.iterdir()):
        named_like_image = entry.suffix.lower() in IMAGE_SUFFIXES
        if named_like_image and entry.is_file():
            images.append(entry)
        elif named_like_image and entry.is_symlink() and not entry.exists():
            rejects.add(entry, "missing_file", "image skipped",
                        "a symbolic link to nothing (dangling)", entry.stem)
        elif named_like_image:
            rejects.add(entry, "not_a_file", "image skipped",
                        "named like an image but is a directory or special file", entry.stem)
        else:
            rejects.add(entry, "not_an_image", "ignored",
                        f"not an image file (images end in {', '.join(IMAGE_SUFFIXES)})")
    return images


def _class_folders(root: Path, rejects: Rejects) -> list[Path]:
    """The class folders under root, sorted; any other entry there is recorded as ignored."""
    folders = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir():
            folders.append(entry)
        else:
            rejects.add(entry, "not_in_class_folder", "ignored",
                        "a file beside the class folders belongs to no class")
    return folders


def read_class_list(path: str | Path | None, folders: list[str]) -> pd.DataFrame:
    """Columns label, key (wnid or folder name), name. Without a file: sorted folders."""
    if path is None:
        keys = sorted(folders)
        return pd.DataFrame({"label": range(len(keys)), "key": keys, "name": keys})
    keys, names = [], []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        key, _, name = line.strip().partition(" ")
        if key in keys:
            raise BadInput(f"{path}:{number}: class {key!r} listed twice")
        keys.append(key)
        names.append(name.strip() or key)
    return pd.DataFrame({"label": range(len(keys)), "key": keys, "name": names})


# ---------------------------------------------------------------- the user's own images

def read_image_list(root: Path, list_file: str | None, rejects: Rejects):
    """[(relative path, class key)] from class folders under root, or from a list file."""
    if list_file is None:
        return [(str(p.relative_to(root)), folder.name)
                for folder in _class_folders(root, rejects)
                for p in _list_images(folder, rejects)]
    items = []
    with open(list_file, newline="") as f:
        for number, record in enumerate(csv.reader(f), 1):
            if number == 1 and record[:2] == ["path", "label"]:
                continue
            if len(record) < 2 or not record[0].strip():
                rejects.add(f"{list_file}:{number}", "list_malformed", "image skipped",
                            f"line {number} is not 'path,label'")
                continue
            items.append((record[0].strip(), record[1].strip()))
    return items


def read_boxes(boxes_file: str | None, rejects: Rejects) -> dict[str, list[tuple]]:
    """{relative path: [(box as floats, label or None)]} from a COCO JSON or a CSV."""
    if boxes_file is None:
        return {}
    found: dict[str, list[tuple]] = {}
    if boxes_file.endswith(".json"):
        try:
            coco = json.loads(Path(boxes_file).read_text())
            files = {img["id"]: img["file_name"] for img in coco["images"]}
            names = {c["id"]: c["name"] for c in coco.get("categories", [])}
            annotations = coco["annotations"]
        except (ValueError, KeyError, TypeError) as err:
            raise BadInput(f"dataset.boxes: {boxes_file} is not a COCO JSON ({err})") from err
        for ann in annotations:
            try:
                x, y, w, h = (float(v) for v in ann["bbox"])
                name = files[ann["image_id"]]
            except (KeyError, TypeError, ValueError):
                rejects.add(boxes_file, "box_invalid", "box dropped",
                            f"COCO annotation {ann.get('id')} has no usable bbox/image_id")
                continue
            found.setdefault(name, []).append(((x, y, x + w, y + h),
                                               names.get(ann.get("category_id"))))
        return found
    with open(boxes_file, newline="") as f:
        for number, record in enumerate(csv.reader(f), 1):
            if number == 1 and record[:1] == ["path"]:
                continue
            try:
                path, label = record[0].strip(), record[1].strip()
                box = tuple(float(v) for v in record[2:6])
                if len(box) != 4:
                    raise ValueError
            except (IndexError, ValueError):
                rejects.add(f"{boxes_file}:{number}", "box_invalid", "box dropped",
                            f"line {number} is not 'path,label,x0,y0,x1,y1'")
                continue
            found.setdefault(path, []).append((box, label))
    return found


def scan_folder(root: str, list_file: str | None, boxes_file: str | None,
                class_list: str | None, rules: BoxRules,
                rejects: Rejects) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest, classes) of the user's own images."""
    root = Path(root)
    items = read_image_list(root, list_file, rejects)
    classes = read_class_list(class_list, sorted({key for _, key in items}))
    label_of = dict(zip(classes["key"], classes["label"]))
    boxes_of = read_boxes(boxes_file, rejects)
    listed = {rel for rel, _ in items}
    for rel in sorted(set(boxes_of) - listed):
        rejects.add(rel, "box_unknown_image", "box dropped",
                    f"{len(boxes_of[rel])} box(es) for an image that is not in the dataset")
    rows = []
    for rel, key in items:
        image_id = str(Path(rel).with_suffix(""))
        path = root / rel
        if key not in label_of:
            rejects.add(path, "unknown_class", "image skipped",
                        f"class {key!r} is not in the class list", image_id)
            continue
        if not path.is_file():
            rejects.add(path, "missing_file", "image skipped", "listed file does not exist",
                        image_id)
            continue
        boxes = []
        for box, box_label in boxes_of.get(rel, []):
            if box_label is not None and box_label != key:
                rejects.add(path, "box_label", "converted",
                            f"box labelled {box_label!r} on an image of class {key!r}; kept "
                            f"as a foreground box", image_id)
            box = check_box(box, 0, 0, rules, rejects, path, image_id)  # size checked at decode
            if box is not None:
                boxes.append(box)
        rows.append((image_id, str(path), label_of[key], boxes, 0, 0, "train"))
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    return _drop_duplicates(manifest, rejects), classes


def default_path(value: str | None, root: str, name: str) -> str | None:
    """An explicit path, or `name` beside/inside root when it exists there."""
    if value:
        return value
    for candidate in (Path(root) / name, Path(root).parent / name):
        if candidate.exists():
            return str(candidate)
    return None

