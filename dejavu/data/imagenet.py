"""The ImageNet adapter (ILSVRC-2012): the train tree and, optionally, the validation
images as the held-out pool (definitions §1).

Train: `<root>/<wnid>/<wnid>_<n>.JPEG`, boxes in `<annotations>/<wnid>/<wnid>_<n>.xml`.
Validation: the images as distributed, flat (`<heldout_root>/ILSVRC2012_val_<n>.JPEG`, each
labelled by the wnid its XML's objects name), or sorted into class folders like the train
tree; boxes in `<heldout_annotations>/<id>.xml` or `<heldout_annotations>/<wnid>/<id>.xml`.
Every validation image has boxes, so all 50,000 can be the held-out control, trained on by
neither model. Problems are recorded like the train tree's (`sources.Rejects`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd

from .sources import (MANIFEST_COLUMNS, BadInput, BoxRules, Rejects, _class_folders,
                      _drop_duplicates, _list_images, check_box, read_class_list)


def parse_voc(path: Path, rules: BoxRules, rejects: Rejects, image_id: str):
    """(boxes, (width, height), object names) from a PASCAL VOC XML, or None if it cannot be
    used. Coordinates are taken as half-open pixel ranges [xmin, xmax) x [ymin, ymax)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        rejects.add(path, "xml_unparsable", "no boxes", f"annotation does not parse: {err}",
                    image_id)
        return None
    try:
        width = int(float(root.findtext("size/width", "0")))
        height = int(float(root.findtext("size/height", "0")))
    except ValueError:
        width = height = 0
    boxes, names = [], []
    for obj in root.iter("object"):
        names.append((obj.findtext("name") or "").strip())
        bnd = obj.find("bndbox")
        try:
            box = [float(bnd.findtext(tag)) for tag in ("xmin", "ymin", "xmax", "ymax")]
        except (AttributeError, TypeError, ValueError):
            rejects.add(path, "box_invalid", "box dropped",
                        "an <object> without a numeric <bndbox>", image_id)
            continue
        box = check_box(box, width, height, rules, rejects, path, image_id)
        if box is not None:
            boxes.append(box)
    if not boxes:
        rejects.add(path, "xml_no_box", "no boxes", "annotation has no usable box", image_id)
    return boxes, (width, height), names


def annotated(path: Path, xml: Path | None, rules: BoxRules, rejects: Rejects):
    """(boxes, size, names) of an image from its XML where there is one."""
    if xml is not None and xml.exists():
        parsed = parse_voc(xml, rules, rejects, path.stem)
        if parsed is not None:
            return parsed
    return [], (0, 0), []


def scan_imagenet(root: str, annotations: str | None, class_list: str | None,
                  rules: BoxRules, rejects: Rejects, heldout_root: str | None = None,
                  heldout_annotations: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest, classes) of an ILSVRC-2012-shaped train tree, and of its validation
    images where `heldout_root` is given (pool "heldout")."""
    root = Path(root)
    folders = [p.name for p in _class_folders(root, rejects)]
    classes = read_class_list(class_list, folders)
    label_of = dict(zip(classes["key"], classes["label"]))
    ann_root = Path(annotations) if annotations else None
    if ann_root is not None and not ann_root.is_dir():
        raise BadInput(f"dataset.annotations: {ann_root} is not a directory")
    rows = []
    for wnid in folders:
        if wnid not in label_of:
            for path in _list_images(root / wnid, rejects):
                rejects.add(path, "unknown_class", "image skipped",
                            f"class folder {wnid!r} is not in the class list", path.stem)
            continue
        ann_dir = ann_root / wnid if ann_root else None
        if ann_dir is not None and not ann_dir.is_dir():
            rejects.add(ann_dir, "no_annotation_dir", "no boxes",
                        f"no annotation directory for class {wnid}; its images have no boxes")
            ann_dir = None
        for path in _list_images(root / wnid, rejects):
            boxes, size, _ = annotated(path, ann_dir / f"{path.stem}.xml" if ann_dir else None,
                                       rules, rejects)
            rows.append((path.stem, str(path), label_of[wnid], boxes, *size, "train"))
    if heldout_root:
        rows += scan_validation(Path(heldout_root), heldout_annotations, label_of, rules,
                                rejects)
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    return _drop_duplicates(manifest, rejects), classes


def scan_validation(root: Path, annotations: str | None, label_of: dict[str, int],
                    rules: BoxRules, rejects: Rejects) -> list[tuple]:
    """Manifest rows (pool "heldout") of the validation images, flat or in class folders.
    A flat image's class is the wnid its annotation's objects name: an image without a
    readable annotation, or whose objects name no class of the list or several, is skipped
    and recorded."""
    ann_root = Path(annotations) if annotations else root
    if not root.is_dir():
        raise BadInput(f"dataset.heldout_root: {root} is not a directory")
    if not ann_root.is_dir():
        raise BadInput(f"dataset.heldout_annotations: {ann_root} is not a directory")
    rows = []
    folders = [p for p in sorted(root.iterdir()) if p.is_dir()]
    if folders:  # sorted into class folders, like the train tree
        for folder in folders:
            if folder.name not in label_of:
                for path in _list_images(folder, rejects):
                    rejects.add(path, "unknown_class", "image skipped",
                                f"class folder {folder.name!r} is not in the class list",
                                path.stem)
                continue
            for path in _list_images(folder, rejects):
                xml = next((x for x in (ann_root / folder.name / f"{path.stem}.xml",
                                        ann_root / f"{path.stem}.xml") if x.exists()), None)
                boxes, size, _ = annotated(path, xml, rules, rejects)
                rows.append((path.stem, str(path), label_of[folder.name], boxes, *size,
                             "heldout"))
        return rows
    for path in _list_images(root, rejects):
        xml = ann_root / f"{path.stem}.xml"
        if not xml.exists():
            rejects.add(path, "val_no_label", "image skipped",
                        f"no annotation {xml.name} to give this validation image its class",
                        path.stem)
            continue
        boxes, size, names = annotated(path, xml, rules, rejects)
        known = sorted({n for n in names if n in label_of})
        if len(known) != 1:
            why = (f"its annotation names classes {known}" if known else
                   f"its annotation names no class of the list ({sorted(set(names))})")
            rejects.add(path, "val_no_label", "image skipped",
                        f"the class of this validation image is unclear: {why}", path.stem)
            continue
        rows.append((path.stem, str(path), label_of[known[0]], boxes, *size, "heldout"))
    return rows
