"""Small ImageNet-shaped trees of real JPEG and XML files, for tests and benchmarks.

`write_imagenet_tree` writes `train/<wnid>/<wnid>_<n>.JPEG`, localization XMLs under
`annotations/<wnid>/` and `LOC_synset_mapping.txt`, with one object box per annotated image
(a class-coloured rectangle drawn on a noisy background, so the box is where the object is).
`add_bad_inputs` then plants every kind of bad input the ingest stage must survive and
returns what it planted, so a test can check each one is recorded.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = np.array([[220, 40, 40], [40, 180, 60], [50, 80, 220], [230, 200, 40],
                    [200, 60, 200], [40, 200, 200], [250, 130, 20], [120, 120, 120]])


def wnid(label: int) -> str:
    return f"n{label + 1:08d}"


def voc_xml(folder: str, filename: str, width: int, height: int, boxes,
            name: str | list[str]) -> str:
    """A PASCAL VOC annotation: one object per box, named `name` (or its box's name)."""
    names = name if isinstance(name, list) else [name] * len(boxes)
    objects = "".join(
        f"<object><name>{n}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for b, n in zip(boxes, names))
    return (f"<annotation><folder>{folder}</folder><filename>{filename}</filename>"
            f"<source><database>ILSVRC_2012</database></source><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size><segmented>0</segmented>"
            f"{objects}</annotation>")


def draw(label: int, width: int, height: int, rng: np.random.Generator):
    """(H, W, 3) uint8 noisy background with a class-coloured object, and its box."""
    base = rng.integers(60, 200, size=3)
    img = np.clip(base + rng.normal(0, 25, size=(height, width, 3)), 0, 255)
    bw = int(rng.integers(width // 5, width // 3 + 1))
    bh = int(rng.integers(height // 5, height // 3 + 1))
    x0 = int(rng.integers(0, width - bw + 1))
    y0 = int(rng.integers(0, height - bh + 1))
    img[y0:y0 + bh, x0:x0 + bw] = COLOURS[label % len(COLOURS)]
    return img.astype(np.uint8), [x0, y0, x0 + bw, y0 + bh]


def jpeg_bytes(img: np.ndarray | Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    (img if isinstance(img, Image.Image) else Image.fromarray(img)).save(
        buf, format="JPEG", quality=90, **save)
    return buf.getvalue()


def write_imagenet_tree(root: str | Path, classes: int = 4, per_class: int = 12,
                        size: tuple[int, int] = (96, 72), box_fraction: float = 0.75,
                        seed: int = 0, annotations: bool = True) -> dict:
    """Write the tree; return its paths: train, annotations, class_list."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    train, ann = root / "train", root / "annotations"
    lines = []
    for label in range(classes):
        key = wnid(label)
        lines.append(f"{key} class {label}, thing {label}")
        (train / key).mkdir(parents=True, exist_ok=True)
        if annotations:
            (ann / key).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            w, h = size
            img, box = draw(label, w, h, rng)
            stem = f"{key}_{n + 1}"
            (train / key / f"{stem}.JPEG").write_bytes(jpeg_bytes(img))
            if annotations and rng.random() < box_fraction:
                (ann / key / f"{stem}.xml").write_text(voc_xml(key, stem, w, h, [box], key))
    (root / "LOC_synset_mapping.txt").write_text("\n".join(lines) + "\n")
    return {"train": train, "annotations": ann, "class_list": root / "LOC_synset_mapping.txt"}


VAL_BAD = ("no_annotation", "unknown_class", "two_classes")  # validation images skipped


def write_imagenet_val(root: str | Path, classes: int = 4, per_class: int = 4,
                       size: tuple[int, int] = (96, 72), seed: int = 1,
                       folders: bool = False) -> dict:
    """ImageNet's validation layout: `val/ILSVRC2012_val_<n>.JPEG`, every image boxed, its
    class named by its XML in `val_annotations/` (or, with `folders`, images sorted into
    `val/<wnid>/` as the train tree). The flat layout also gets one image of each VAL_BAD
    case, whose class cannot be read. Returns the paths (val, val_annotations) and the
    planted cases' ids."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    val, ann = root / "val", root / "val_annotations"
    val.mkdir(parents=True, exist_ok=True)
    ann.mkdir(parents=True, exist_ok=True)
    n = 0
    for label in range(classes):
        for _ in range(per_class):
            n += 1
            stem, (w, h) = f"ILSVRC2012_val_{n:08d}", size
            img, box = draw(label, w, h, rng)
            folder = val / wnid(label) if folders else val
            folder.mkdir(exist_ok=True)
            (folder / f"{stem}.JPEG").write_bytes(jpeg_bytes(img))
            (ann / f"{stem}.xml").write_text(voc_xml("val", stem, w, h, [box], wnid(label)))
    planted = {}
    if not folders:
        img, box = draw(0, *size, rng)
        names = {"no_annotation": None, "unknown_class": ["n99999999"],
                 "two_classes": [wnid(0), wnid(1)]}
        for case in VAL_BAD:
            n += 1
            stem = planted[case] = f"ILSVRC2012_val_{n:08d}"
            (val / f"{stem}.JPEG").write_bytes(jpeg_bytes(img))
            if names[case]:
                (ann / f"{stem}.xml").write_text(
                    voc_xml("val", stem, *size, [box] * len(names[case]), names[case]))
    return {"val": val, "val_annotations": ann, "planted": planted}


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def add_bad_inputs(tree: dict, seed: int = 1) -> dict[str, Path]:
    """Plant each bad input in an existing tree (classes 0 and 1 must exist).

    Returns {case: path of the planted file}. The EXIF case is a 60x40 raw image stored
    with orientation 6 whose annotated box (in raw pixels) covers a pure-green patch."""
    rng = np.random.default_rng(seed)
    train, ann = Path(tree["train"]), Path(tree["annotations"])
    a, b = wnid(0), wnid(1)
    planted: dict[str, Path] = {}

    def image(name: str, data: bytes, xml: str | None = None, cls: str = a) -> Path:
        path = train / cls / f"{name}.JPEG"
        path.write_bytes(data)
        if xml is not None:
            (ann / cls / f"{name}.xml").write_text(xml)
        return path

    good, box = draw(0, 80, 60, rng)
    ok_xml = voc_xml(a, "x", 80, 60, [box], a)
    whole = jpeg_bytes(good)
    planted["truncated"] = image(f"{a}_9001", whole[:len(whole) // 2], ok_xml)
    planted["corrupt"] = image(f"{a}_9002", rng.integers(0, 256, 3000, dtype=np.uint8)
                               .tobytes(), ok_xml)
    planted["zero_byte"] = image(f"{a}_9003", b"", ok_xml)
    planted["cmyk"] = image(f"{a}_9004", jpeg_bytes(Image.fromarray(good).convert("CMYK")),
                            ok_xml)
    planted["grayscale"] = image(f"{a}_9005", jpeg_bytes(Image.fromarray(good).convert("L")),
                                 ok_xml)
    sixteen = (good.mean(axis=2) * 257).astype(np.uint16)  # PNGs named .JPEG, as ImageNet has
    planted["high_bit_depth"] = image(f"{a}_9006", png_bytes(Image.fromarray(sixteen)), ok_xml)
    planted["alpha"] = image(f"{a}_9007", png_bytes(Image.fromarray(
        np.dstack([good, np.full(good.shape[:2], 128, np.uint8)]), "RGBA")), ok_xml)
    raw = np.full((40, 60, 3), 90, np.uint8)     # raw 60 x 40, shown rotated to 40 x 60
    raw[5:15, 40:55] = [0, 255, 0]
    exif = Image.Exif()
    exif[0x0112] = 6
    planted["exif_orientation"] = image(
        f"{a}_9008", jpeg_bytes(raw, exif=exif.tobytes()),
        voc_xml(a, "x", 60, 40, [[40, 5, 55, 15]], a))
    planted["xml_unparsable"] = image(f"{a}_9009", whole, "<annotation><size><width>80")
    planted["box_outside"] = image(f"{a}_9010", whole,
                                   voc_xml(a, "x", 80, 60, [[60, 40, 95, 70]], a))
    planted["box_inverted"] = image(f"{a}_9011", whole,
                                    voc_xml(a, "x", 80, 60, [[50, 10, 20, 30]], a))
    planted["xml_no_box"] = image(f"{a}_9012", whole, voc_xml(a, "x", 80, 60, [], a))
    stray = train / "n99999999"                  # a class folder not in the class list
    stray.mkdir(exist_ok=True)
    planted["unknown_class"] = stray / "n99999999_1.JPEG"
    planted["unknown_class"].write_bytes(whole)
    planted["duplicate_id"] = train / b / f"{a}_1.JPEG"   # same file id as class 0's first
    planted["duplicate_id"].write_bytes(whole)
    ann_dir = ann / b
    for xml in ann_dir.glob("*.xml"):
        xml.unlink()
    ann_dir.rmdir()
    planted["no_annotation_dir"] = ann_dir
    return planted
