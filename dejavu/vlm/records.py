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
from collections.abc import Iterator
from pathlib import Path

import numpy as np
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
    """(records, vocabulary) of a JSON-lines file, whole (`jsonl_chunks` streams them)."""
    vocabulary, _, chunks = jsonl_chunks(path, rejects, 65_536)
    return pd.concat([pd.DataFrame(columns=COLUMNS), *chunks], ignore_index=True), vocabulary


def jsonl_chunks(path: str, rejects: Rejects,
                 chunk_rows: int) -> tuple[list[str], int, Iterator[pd.DataFrame]]:
    """A JSON-lines file's vocabulary, an upper bound on its records, and its records
    `chunk_rows` at a time (each line's number is its record id), read in two passes that
    hold 8-byte hashes of the image paths, not the lines: the first finds the vocabulary,
    the bad lines and each path's first line; the second makes the records."""
    vocabulary, first_line, lines = _scan_jsonl(path, rejects)
    ids = {name: i for i, name in enumerate(vocabulary)}
    folder = Path(path).parent

    def chunks() -> Iterator[pd.DataFrame]:
        rows = []
        for n, (number, entry) in enumerate(_entries(path)):
            image = folder / str(entry["image"])
            if first_line[n] != number:
                rejects.add(image, "duplicate", SKIPPED,
                            f"the image of line {first_line[n]} again", str(number))
                continue
            row = _record(rejects, str(number), image, entry.get("caption"),
                          [ids[str(o)] for o in entry.get("objects") or []], vocabulary)
            if row is not None:
                rows.append(row)
            if len(rows) == chunk_rows:
                yield pd.DataFrame(rows, columns=COLUMNS)
                rows = []
        if rows:
            yield pd.DataFrame(rows, columns=COLUMNS)
    return vocabulary, int((first_line == lines).sum()), chunks()


def _entries(path: str, rejects: Rejects | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each usable line, a line at a time; each unusable one is
    recorded in `rejects` (the first pass) or passed over (the second)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            raw, where = raw.rstrip(b"\r\n"), f"{path}:{number}"
            try:
                entry = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as err:
                if rejects is not None:
                    rejects.add(where, "text_not_utf8", SKIPPED,
                                f"not UTF-8 text ({err.reason})", str(number))
                continue
            except json.JSONDecodeError as err:
                if raw.strip() and rejects is not None:
                    rejects.add(where, "line_invalid", SKIPPED,
                                f"not a JSON object ({err.msg})", str(number))
                continue
            if not isinstance(entry, dict) or "image" not in entry:
                if rejects is not None:
                    rejects.add(where, "line_invalid", SKIPPED, "no \"image\" key",
                                str(number))
                continue
            yield number, entry


def _scan_jsonl(path: str, rejects: Rejects) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The first pass: the vocabulary (every object name, sorted) and, for each usable
    line in order, the number of the first line naming its image (itself unless it is a
    duplicate) and its own number. 16 bytes a line while reading (a 64-bit hash of the
    path and the line's number), about 74 at the end (the sort; vlm/resources.py); two paths
    sharing a hash, about 4e-5 likely at 40 million, would drop one."""
    from array import array
    from hashlib import blake2b
    names, hashes, numbers, folder = set(), array("Q"), array("q"), Path(path).parent
    for number, entry in _entries(path, rejects):
        names.update(str(o) for o in entry.get("objects") or [])
        key = str(folder / str(entry["image"])).encode("utf-8", "surrogatepass")
        hashes.append(int.from_bytes(blake2b(key, digest_size=8).digest(), "little"))
        numbers.append(number)
    lines = np.frombuffer(numbers, np.int64) if numbers else np.zeros(0, np.int64)
    _, first, inverse = np.unique(np.frombuffer(hashes, np.uint64) if hashes else
                                  np.zeros(0, np.uint64), return_index=True,
                                  return_inverse=True)
    return sorted(names), lines[first][inverse.ravel()], lines


def _load_json(path: str) -> dict:
    """A whole annotation file; one that cannot be read is an error naming it."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a UTF-8 JSON file ({err})") from err
