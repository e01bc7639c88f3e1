"""Captioned datasets on disk into records (definitions §14): one row per image with its
caption, the objects in it (ids of a vocabulary) and the objects its caption names, plus
every input skipped or changed on the way, with its reason (`data.sources.Rejects`).

Adapters:
- `coco`: COCO-format captions (`captions_*.json`: images and caption annotations) and
  instances (`instances_*.json`: the objects, as instance annotations, and the
  categories). Objects are the instance categories, numbered 0.. in category-id order; an
  image's first caption (lowest annotation id) is its caption.
- `jsonl`: the user's own images, one JSON object per line: `{"image": path relative to
  the file, "caption": text, "objects": [names]}`; the vocabulary is every name seen,
  sorted.

A caption *names* an object when the object's name occurs in it as whole words
(case-insensitive; "cats" does not name "cat"). Nothing here decodes an image: a missing
file is found by its path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from ..data.sources import Rejects

COLUMNS = ["id", "path", "caption", "objects", "named"]
SKIPPED = "record skipped"


def named_objects(caption: str, vocabulary: list[str]) -> list[int]:
    """Ids of the vocabulary's names that occur in the caption as whole words."""
    text = " " + " ".join(re.findall(r"[a-z0-9]+", caption.lower())) + " "
    return [i for i, name in enumerate(vocabulary)
            if " " + " ".join(re.findall(r"[a-z0-9]+", name.lower())) + " " in text]


def _record(rejects: Rejects, image_id: str, path: Path, caption, objects: list[int],
            vocabulary: list[str]) -> dict | None:
    """A record, or None (recorded) when its image is missing or its caption empty."""
    if not path.is_file():
        rejects.add(path, "image_missing", SKIPPED, "the image file does not exist", image_id)
        return None
    if not isinstance(caption, str) or not caption.strip():
        rejects.add(path, "caption_empty", SKIPPED, "the caption is empty", image_id)
        return None
    return {"id": image_id, "path": str(path), "caption": caption.strip(),
            "objects": sorted(set(objects)), "named": named_objects(caption, vocabulary)}


def read_coco(captions_path: str, instances_path: str, image_root: str,
              rejects: Rejects) -> tuple[pd.DataFrame, list[str]]:
    """(records, vocabulary) of a COCO-format pair of annotation files."""
    captions, instances = _load_json(captions_path), _load_json(instances_path)
    categories = sorted(instances.get("categories", []), key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(categories)}
    vocabulary = [c["name"] for c in categories]
    objects: dict = {}
    for ann in instances.get("annotations", []):
        if ann.get("category_id") not in index:
            rejects.add(instances_path, "object_unknown", "object dropped",
                        f"category id {ann.get('category_id')!r} is not among the categories",
                        str(ann.get("image_id", "")))
            continue
        objects.setdefault(ann["image_id"], []).append(index[ann["category_id"]])
    first: dict = {}
    for ann in sorted(captions.get("annotations", []), key=lambda a: a.get("id", 0)):
        first.setdefault(ann.get("image_id"), ann.get("caption"))
    rows, seen = [], set()
    for image in captions.get("images", []):
        image_id, path = str(image["id"]), Path(image_root) / image["file_name"]
        if image_id in seen:
            rejects.add(path, "duplicate", SKIPPED, f"image id {image_id} is listed twice",
                        image_id)
            continue
        seen.add(image_id)
        row = _record(rejects, image_id, path, first.get(image["id"]),
                      objects.get(image["id"], []), vocabulary)
        if row is not None:
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS), vocabulary


def read_jsonl(path: str, rejects: Rejects) -> tuple[pd.DataFrame, list[str]]:
    """(records, vocabulary) of a JSON-lines file; each line's number is its record id."""
    lines, parsed = Path(path).read_bytes().splitlines(), []
    for number, raw in enumerate(lines, start=1):
        where = f"{path}:{number}"
        try:
            entry = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            rejects.add(where, "text_not_utf8", SKIPPED, f"not UTF-8 text ({err.reason})",
                        str(number))
            continue
        except json.JSONDecodeError as err:
            if raw.strip():
                rejects.add(where, "line_invalid", SKIPPED, f"not a JSON object ({err.msg})",
                            str(number))
            continue
        if not isinstance(entry, dict) or "image" not in entry:
            rejects.add(where, "line_invalid", SKIPPED, "no \"image\" key", str(number))
            continue
        parsed.append((number, entry))
    vocabulary = sorted({str(o) for _, e in parsed for o in e.get("objects") or []})
    ids = {name: i for i, name in enumerate(vocabulary)}
    rows, seen = [], {}
    for number, entry in parsed:
        image = Path(path).parent / str(entry["image"])
        if str(image) in seen:
            rejects.add(image, "duplicate", SKIPPED, f"the image of line {seen[str(image)]} "
                        f"again", str(number))
            continue
        seen[str(image)] = number
        row = _record(rejects, str(number), image, entry.get("caption"),
                      [ids[str(o)] for o in entry.get("objects") or []], vocabulary)
        if row is not None:
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS), vocabulary


def _load_json(path: str) -> dict:
    """A whole annotation file; one that cannot be read is an error naming it."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a UTF-8 JSON file ({err})") from err
