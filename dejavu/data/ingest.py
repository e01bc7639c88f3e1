"""Decode a real dataset into the store every later stage reads (definitions §1–2).

The manifest from `dejavu.data.sources` is cut into Zarr shards of `shard_rows` images; ingest
job j of J decodes a contiguous run of whole shards with `workers` threads (PIL decodes
and resizes without holding the GIL) and writes them into `images.zarr.partial`, never
touching another job's shard. Each job then writes a
table of what it stored per row (sizes, boxes in stored pixels) and what it could not use.
`finalize` checks every job reported for this manifest, builds the dataset index and the
rejects table, and renames the store, so a store at the final path is complete.

Every image is stored on an S x S canvas (S = `image_size`), by `resize` policy:
- `fit`: the longer side scaled to S, the image at the top-left, the rest zero; the index
  records the stored height and width, and every stage reads only that region.
- `center`: the shorter side scaled to S, then the centre S x S (what an eval transform
  sees; object boxes outside it are dropped).
- `stretch`: scaled to S x S, aspect not kept.
Boxes are rescaled with the image (outward, so a box never shrinks off its object).
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from zarr.codecs import ZstdCodec
from PIL import Image, ImageOps, UnidentifiedImageError

from .imagenet import scan_imagenet
from .sources import BadInput, BoxRules, Rejects, check_box, scan_folder
from ..core.store import (file_digest, finish_partial, open_or_create, partial_store,
                          shard_range, store_key)

log = logging.getLogger(__name__)
RESIZE_POLICIES = ("fit", "center", "stretch")
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class IngestConfig:
    image_size: int = 256
    resize: str = "fit"
    exif: str = "apply"        # apply the EXIF orientation (boxes follow), or ignore it
    boxes_outside: str = "clip"
    strict: bool = False


class Unusable(Exception):
    """An image that cannot be decoded: kind and reason for the rejects table."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


# ---------------------------------------------------------------- one image

def orient_box(box, orientation: int, width: int, height: int) -> list[int]:
    """A box of the raw W x H pixel array, in the image after applying an EXIF orientation
    (the same transposition `PIL.ImageOps.exif_transpose` applies)."""
    x0, y0, x1, y1 = box
    return {
        1: [x0, y0, x1, y1],
        2: [width - x1, y0, width - x0, y1],                # mirror left-right
        3: [width - x1, height - y1, width - x0, height - y0],  # rotate 180
        4: [x0, height - y1, x1, height - y0],              # mirror top-bottom
        5: [y0, x0, y1, x1],                                # transpose
        6: [height - y1, x0, height - y0, x1],              # rotate 90 clockwise
        7: [height - y1, width - x1, height - y0, width - x0],  # transverse
        8: [y0, width - x1, y1, width - x0],                # rotate 90 anticlockwise
    }[orientation]


def _to_rgb(img: Image.Image, notes: list) -> Image.Image:
    """RGB whatever the mode, noting each conversion."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        notes.append(("high_bit_depth", f"{mode} pixels scaled to 8 bits"))
        a = np.clip(np.round(a * 255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
    if has_alpha:
        notes.append(("alpha", f"{mode} image: alpha channel dropped"))
        img = img.convert("RGBA") if mode in ("P", "PA") else img
    elif mode in ("L", "1"):
        notes.append(("grayscale", f"{mode} image replicated to RGB"))
    elif mode == "CMYK":
        notes.append(("cmyk", "CMYK image converted to RGB"))
    elif mode != "P":
        notes.append(("mode", f"{mode} image converted to RGB"))
    return img.convert("RGB")


def geometry(width: int, height: int, side: int, policy: str):
    """(scale_x, scale_y, offset_x, offset_y, stored_w, stored_h, resized_w, resized_h)."""
    if policy == "fit":
        s = side / max(width, height)
        w, h = max(1, min(side, round(width * s))), max(1, min(side, round(height * s)))
        return s, s, 0, 0, w, h, w, h
    if policy == "center":
        s = side / min(width, height)
        w, h = max(side, round(width * s)), max(side, round(height * s))
        return s, s, (w - side) // 2, (h - side) // 2, side, side, w, h
    if policy == "stretch":
        return side / width, side / height, 0, 0, side, side, side, side
    raise ValueError(f"dataset.resize must be one of {RESIZE_POLICIES}, got {policy!r}")


def load_image(path: str, boxes: list, ann_size: tuple[int, int], cfg: IngestConfig,
               out: np.ndarray | None = None):
    """(canvas (S, S, 3) uint8, record, notes) for one file, or raise Unusable.

    `boxes` are in the pixels of the file as stored (before any EXIF orientation); a
    record holds the original and stored sizes and the boxes in stored pixels. `out`: a
    zeroed canvas to draw into (saves a copy)."""
    notes: list[tuple[str, str]] = []
    if os.path.getsize(path) == 0:
        raise Unusable("zero_byte", "file is empty (0 bytes)")
    try:
        img = Image.open(path)
    except UnidentifiedImageError:
        raise Unusable("unreadable", "not an image PIL can identify (corrupt or unknown "
                       "format)") from None
    except OSError as err:
        raise Unusable("unreadable", f"cannot open: {err}") from None
    with img:
        raw_w, raw_h = img.size
        orientation = 1
        if cfg.exif == "apply":
            orientation = int(img.getexif().get(EXIF_ORIENTATION, 1) or 1)
            orientation = orientation if 1 <= orientation <= 8 else 1
        width, height = (raw_h, raw_w) if orientation in (5, 6, 7, 8) else (raw_w, raw_h)
        sx, sy, ox, oy, w, h, rw, rh = geometry(width, height, cfg.image_size, cfg.resize)
        if img.format == "JPEG" and sx < 1 and sy < 1:
            # decode at a reduced DCT scale when the target is at most half the size
            want = (rw, rh) if orientation < 5 else (rh, rw)
            img.draft(img.mode, want)
        try:
            img.load()
        except OSError as err:
            kind = "truncated" if "truncated" in str(err) else "corrupt"
            raise Unusable(kind, f"decoding failed: {err}") from None
        except (ValueError, SyntaxError) as err:
            raise Unusable("corrupt", f"decoding failed: {err}") from None
        frames = getattr(img, "n_frames", 1)
        if frames > 1:  # animated GIF, PNG or WebP; also multi-page TIFF
            notes.append(("animated", f"{img.format} of {frames} frames: the first is used"))
        if orientation != 1:
            img = ImageOps.exif_transpose(img)
            notes.append(("exif_orientation", f"EXIF orientation {orientation} applied"))
        img = _to_rgb(img, notes)
        img = img.resize((rw, rh), Image.Resampling.BILINEAR)
        pixels = np.asarray(img, dtype=np.uint8)[oy:oy + h, ox:ox + w]
    canvas = np.zeros((cfg.image_size, cfg.image_size, 3), np.uint8) if out is None else out
    canvas[:h, :w] = pixels
    # boxes: annotation pixels -> raw pixels -> oriented -> stored
    ann_w, ann_h = ann_size
    if ann_w and ann_h and (ann_w, ann_h) != (raw_w, raw_h):
        notes.append(("size_mismatch", f"annotation is for {ann_w}x{ann_h}, image is "
                      f"{raw_w}x{raw_h}; boxes rescaled"))
        fx, fy = raw_w / ann_w, raw_h / ann_h
        boxes = [[b[0] * fx, b[1] * fy, b[2] * fx, b[3] * fy] for b in boxes]
    return canvas, {"orig_width": width, "orig_height": height, "width": w, "height": h,
                    "scale": float(math.sqrt(sx * sy)), "orientation": orientation,
                    "geometry": (sx, sy, ox, oy, w, h), "raw_boxes": boxes,
                    "raw_size": (raw_w, raw_h)}, notes


def stored_boxes(record: dict, rules: BoxRules, rejects: Rejects, path: str,
                 image_id: str) -> list[list[int]]:
    """The image's boxes in stored pixels: checked against the real size, oriented, scaled
    outward, clipped to the stored region; boxes that leave it entirely are dropped."""
    raw_w, raw_h = record["raw_size"]
    sx, sy, ox, oy, w, h = record["geometry"]
    out = []
    for box in record["raw_boxes"]:
        box = check_box(box, raw_w, raw_h, rules, rejects, path, image_id)
        if box is None:
            continue
        x0, y0, x1, y1 = orient_box(box, record["orientation"], raw_w, raw_h)
        s = [max(0, math.floor(x0 * sx - ox)), max(0, math.floor(y0 * sy - oy)),
             min(w, math.ceil(x1 * sx - ox)), min(h, math.ceil(y1 * sy - oy))]
        if s[2] <= s[0] or s[3] <= s[1]:
            rejects.add(path, "box_cropped_away", "box dropped",
                        f"box {box} lies outside the stored centre square", image_id)
            continue
        out.append(s)
    return out


# ---------------------------------------------------------------- a batch (one worker)

def decode_batch(items: list[tuple], cfg: IngestConfig):
    """Decode manifest rows [(row, id, path, boxes, ann_w, ann_h)] in one thread.

    Returns (images (n, S, S, 3), records, reject rows); each record carries its row;
    unusable images have a zero image and a record with ok=False."""
    rejects = Rejects("ingest", cfg.strict)
    rules = BoxRules(cfg.boxes_outside)
    images = np.zeros((len(items), cfg.image_size, cfg.image_size, 3), np.uint8)
    records = []
    for i, (row, image_id, path, boxes, ann_w, ann_h) in enumerate(items):
        try:
            _, record, notes = load_image(path, list(boxes), (ann_w, ann_h), cfg, images[i])
        except Unusable as err:
            rejects.add(path, err.kind, "image skipped", err.reason, image_id)
            records.append({"row": row, "ok": False, "boxes": []})
            continue
        for kind, reason in notes:
            action = "converted" if kind != "size_mismatch" else "box rescaled"
            rejects.add(path, kind, action, reason, image_id)
        had_boxes = len(boxes) > 0
        kept = stored_boxes(record, rules, rejects, path, image_id)
        if had_boxes and not kept:
            rejects.add(path, "no_box_left", "no boxes", "every box was dropped", image_id)
        records.append({"row": row, "ok": True, "boxes": kept,
                        **{k: record[k] for k in ("height", "width", "orig_height",
                                                  "orig_width", "scale")}})
    return images, records, rejects.rows


def _manifest_items(manifest: pd.DataFrame, start: int, stop: int) -> list[tuple]:
    part = manifest.iloc[start:stop]
    return list(zip(range(start, stop), part["id"], part["path"],
                    [[list(map(float, b)) for b in boxes] for boxes in part["boxes"]],
                    part["ann_width"].astype(int), part["ann_height"].astype(int)))


def decode_rows(manifest: pd.DataFrame, start: int, stop: int, cfg: IngestConfig,
                pool: ThreadPoolExecutor | None = None, workers: int = 1):
    """Decode rows [start, stop), on the pool's `workers` threads if given; results in row
    order."""
    items = _manifest_items(manifest, start, stop)
    if pool is None:
        return decode_batch(items, cfg)
    size = max(1, math.ceil(len(items) / (4 * workers)))
    batches = [items[i:i + size] for i in range(0, len(items), size)]
    images = np.empty((len(items), cfg.image_size, cfg.image_size, 3), np.uint8)
    records, rejects, at = [], [], 0
    for b_images, b_records, b_rejects in pool.map(decode_batch, batches,
                                                   [cfg] * len(batches)):
        images[at:at + len(b_records)] = b_images
        at += len(b_records)
        records += b_records
        rejects += b_rejects
    return images, records, rejects


# ---------------------------------------------------------------- shard jobs and finalize

def open_partial(partial: str, n_rows: int, side: int, shard_rows: int, chunk_rows: int,
                 attrs: dict) -> zarr.Array:
    """The partial image array, reused if it was made for the same manifest and layout."""
    return open_or_create(partial, attrs, lambda path: zarr.create_array(
        store=path, shape=(n_rows, side, side, 3), dtype=np.uint8,
        chunks=(chunk_rows, side, side, 3), shards=(shard_rows, side, side, 3),
        attributes=attrs, compressors=[ZstdCodec(level=1)],  # 2x faster, same size
        config={"write_empty_chunks": True}))


def _write_rows(arr: zarr.Array, start: int, stop: int, images: np.ndarray) -> None:
    arr[start:stop] = images  # whole shards only


def run_shard(manifest_path: str, images_path: str, meta_path: str, *, job: int, jobs: int,
              image_size: int, resize: str = "fit", exif: str = "apply",
              boxes_outside: str = "clip", strict: bool = False, shard_rows: int = 1024,
              chunk_rows: int = 16, workers: int = 1) -> None:
    """Ingest job `job` of `jobs`: decode its shards into `<images_path>.partial`."""
    if shard_rows % chunk_rows:
        raise ValueError(f"dataset.ingest.shard_rows ({shard_rows}) must be a multiple of "
                         f"dataset.ingest.chunk_rows ({chunk_rows})")
    cfg = IngestConfig(image_size, resize, exif, boxes_outside, strict)
    manifest = pd.read_parquet(manifest_path)
    attrs = {"manifest_sha256": file_digest(manifest_path), "n_rows": len(manifest),
             "jobs": jobs, "shard_rows": shard_rows, "image_size": image_size,
             "resize": resize, "exif": exif}
    arr = open_partial(images_path + ".partial", len(manifest), image_size, shard_rows,
                       chunk_rows, attrs)
    start, stop = shard_range(job, jobs, len(manifest), shard_rows)
    records, rejects = [], []
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    writer, pending = ThreadPoolExecutor(1), None  # shard n is written while n + 1 decodes
    try:
        for s0 in range(start, stop, shard_rows):
            s1 = min(s0 + shard_rows, stop)
            images, recs, rej = decode_rows(manifest, s0, s1, cfg, pool, workers)
            if pending is not None:
                pending.result()
            pending = writer.submit(_write_rows, arr, s0, s1, images)
            records += recs
            rejects += rej
            log.info("ingest job %d/%d: rows [%d, %d) of %d decoded", job, jobs, s0, s1,
                     len(manifest))
        if pending is not None:
            pending.result()
    finally:
        writer.shutdown()
        if pool is not None:
            pool.shutdown()
    meta = pd.DataFrame(records, columns=["row", "ok", "boxes", "height", "width",
                                          "orig_height", "orig_width", "scale"])
    meta["job"], meta["start"], meta["stop"] = job, start, stop
    meta["manifest_sha256"] = attrs["manifest_sha256"]
    meta["store"] = store_key(attrs)
    pd.DataFrame(rejects, columns=["stage", "id", "path", "kind", "action", "reason"]) \
        .to_parquet(Path(meta_path).with_suffix(".rejects.parquet"), index=False)
    meta.to_parquet(meta_path, index=False)


def finalize(manifest_path: str, scan_rejects_path: str, metas: list[str], images_path: str,
             index_path: str, rejects_path: str) -> None:
    """Check every job reported for this manifest, then write the index and the rejects
    table and move the image store to its final path."""
    partial = images_path + ".partial"
    parts = [pd.read_parquet(m) for m in metas]
    meta = pd.concat(parts, ignore_index=True).sort_values("row", kind="stable")
    store = partial_store(partial, {p["store"].iloc[0] for p in parts if len(p)})
    attrs = dict(zarr.open_array(store, mode="r").attrs)
    if attrs["manifest_sha256"] != file_digest(manifest_path):
        raise RuntimeError(f"{store} was written for another manifest; rerun the ingest jobs")
    jobs = sorted(int(p["job"].iloc[0]) for p in parts if len(p))
    stale = meta["manifest_sha256"].ne(attrs["manifest_sha256"]).any()
    if stale or meta["row"].tolist() != list(range(attrs["n_rows"])):
        raise RuntimeError(f"{store} is incomplete or stale: jobs {jobs} reported "
                           f"{len(meta)} of {attrs['n_rows']} rows")
    manifest = pd.read_parquet(manifest_path)
    ok = meta[meta["ok"].astype(bool)].set_index("row")
    kept = manifest.loc[ok.index]
    index = pd.DataFrame({
        "id": kept["id"].to_numpy(),
        "label": kept["label"].to_numpy().astype(np.int64),
        "boxes": [[list(map(int, b)) for b in boxes] for boxes in ok["boxes"]],
        "height": ok["height"].to_numpy().astype(np.int64),
        "width": ok["width"].to_numpy().astype(np.int64),
        "row": ok.index.to_numpy().astype(np.int64),
        "orig_height": ok["orig_height"].to_numpy().astype(np.int64),
        "orig_width": ok["orig_width"].to_numpy().astype(np.int64),
        "scale": ok["scale"].to_numpy().astype(np.float64),
        "path": kept["path"].to_numpy(),
        "pool": kept["pool"].to_numpy() if "pool" in kept else "train",
    })
    rejects = pd.concat([pd.read_parquet(scan_rejects_path)] +
                        [pd.read_parquet(Path(m).with_suffix(".rejects.parquet"))
                         for m in metas], ignore_index=True)
    from ..core.store import write_index
    write_index(index_path, index)
    rejects.to_parquet(rejects_path, index=False)
    finish_partial(partial, store, images_path)
    log.info("dataset: %d of %d images stored; %d rows in the rejects table", len(index),
             len(manifest), len(rejects))


def run_scan(dataset: dict, manifest_path: str, classes_path: str, rejects_path: str) -> None:
    manifest, classes, rejects = scan(dataset, strict=dataset.get("strict", False))
    manifest.to_parquet(manifest_path, index=False)
    classes.to_csv(classes_path, index=False)
    rejects.to_parquet(rejects_path, index=False)


def scan(dataset: dict, strict: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(manifest, classes, rejects) of the configured dataset (`config["dataset"]`)."""
    rejects = Rejects("scan", strict)
    rules = BoxRules(outside=dataset.get("boxes_outside", "clip"))
    if dataset["name"] == "imagenet":
        manifest, classes = scan_imagenet(dataset["root"], dataset.get("annotations"),
                                          dataset.get("class_list"), rules, rejects,
                                          dataset.get("heldout_root"),
                                          dataset.get("heldout_annotations"))
    elif dataset["name"] == "folder":
        manifest, classes = scan_folder(dataset["root"], dataset.get("list"),
                                        dataset.get("boxes"), dataset.get("class_list"),
                                        rules, rejects)
    else:
        raise ValueError(f"dataset {dataset['name']!r} has no adapter")
    if manifest.empty:
        raise BadInput(f"dataset.root: no usable image under {dataset['root']}")
    log.info("%d images in %d classes, %d with boxes; %d input problems recorded",
             len(manifest), manifest["label"].nunique(),
             sum(len(b) > 0 for b in manifest["boxes"]), len(rejects.rows))
    return manifest, classes, rejects.table()
