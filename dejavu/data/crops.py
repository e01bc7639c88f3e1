"""Background crops of the attacked images (definitions §2).

The periphery crop is the box-free rectangle with the largest shorter side (ties: larger
area, then smaller (y0, x0), then smaller y1 -- the last one definitions §2 leaves open: of two
rectangles at the same corner with the same side and area, take the wider one). It is
exact: an optimal rectangle can always be grown until each edge rests on a box edge or the
image border without losing side or area, so searching the rectangles whose edges lie on
those coordinates finds it. Boxes and rectangles are
half-open pixel ranges [x0, x1) x [y0, y1).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
CHUNK_BYTES = 4 * 2**20  # a crops store's chunk: up to 256 crops, at most about 4 MB
BLOCK_ROWS = 1024        # crops made and written at a time (whole chunks): what the job holds


class Rect(NamedTuple):
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def shorter_side(self) -> int:
        return min(self.x1 - self.x0, self.y1 - self.y0)


def _edge_pairs(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.triu_indices(len(coords), k=1)
    return coords[lo], coords[hi]


def largest_free_rect(boxes: np.ndarray, height: int, width: int,
                      criterion: str = "side") -> Rect | None:
    """Best box-free rectangle inside a (height, width) image, or None if there is none.

    boxes: (B, 4) int [x0, y0, x1, y1]. criterion "side": largest shorter side, then area;
    "area": largest area, then shorter side. Remaining ties: smaller (y0, x0), then smaller y1.
    """
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    boxes = np.clip(boxes, 0, [width, height, width, height])
    xs = np.unique(np.concatenate([[0, width], boxes[:, [0, 2]].ravel()]))
    ys = np.unique(np.concatenate([[0, height], boxes[:, [1, 3]].ravel()]))
    rx0, rx1 = _edge_pairs(xs)  # (P,)
    ry0, ry1 = _edge_pairs(ys)  # (Q,)
    hits_x = (rx0[:, None] < boxes[None, :, 2]) & (boxes[None, :, 0] < rx1[:, None])  # (P, B)
    hits_y = (ry0[:, None] < boxes[None, :, 3]) & (boxes[None, :, 1] < ry1[:, None])  # (Q, B)
    free = (hits_x.astype(np.int32) @ hits_y.T.astype(np.int32)) == 0  # (P, Q)
    if not free.any():
        return None
    p, q = np.nonzero(free)
    w, h = (rx1 - rx0)[p], (ry1 - ry0)[q]
    side, area = np.minimum(w, h), w * h
    first, second = (side, area) if criterion == "side" else (area, side)
    best = np.lexsort((ry1[q], rx0[p], ry0[q], -second, -first))[0]
    return Rect(int(rx0[p[best]]), int(ry0[q[best]]), int(rx1[p[best]]), int(ry1[q[best]]))


def periphery_crop(boxes, height: int, width: int, min_side: int, criterion: str = "side",
                   scale: float = 1.0) -> tuple[Rect | None, str]:
    """The periphery crop and "" or None and the reason there is none.

    scale: stored pixels per original pixel, when min_side counts original pixels."""
    if len(boxes) == 0:
        return None, "no bounding box"
    rect = largest_free_rect(boxes, height, width, criterion)
    if rect is None:
        return None, "boxes cover the whole image"
    if rect.shorter_side < min_side * scale:
        unit = "px" if scale == 1.0 else f"stored px (= {rect.shorter_side / scale:.0f} original)"
        return None, (f"largest box-free shorter side {rect.shorter_side} {unit} < "
                      f"min_side {min_side}")
    return rect, ""


def corner_crop(height: int, width: int, frac: float = 0.3, corner: str = "top-left") -> Rect:
    """The frac*H x frac*W region at a corner (for images without boxes)."""
    if corner not in CORNERS:
        raise ValueError(f"corner must be one of {CORNERS}, got {corner!r}")
    h, w = max(1, round(frac * height)), max(1, round(frac * width))
    y0 = 0 if corner.startswith("top") else height - h
    x0 = 0 if corner.endswith("left") else width - w
    return Rect(x0, y0, x0 + w, y0 + h)


def object_box(boxes) -> Rect:
    """Union of an image's boxes (for visual grids)."""
    b = np.asarray(boxes).reshape(-1, 4)
    return Rect(int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 2].max()), int(b[:, 3].max()))


def crop_resize(image: np.ndarray, rect: Rect, side: int) -> np.ndarray:
    """Cut `rect` from a (H, W, 3) uint8 image and resize it to (side, side, 3) uint8."""
    import torch
    patch = torch.from_numpy(np.ascontiguousarray(image[rect.y0:rect.y1, rect.x0:rect.x1]))
    from ..core.store import resize_square
    out = resize_square(patch.permute(2, 0, 1)[None], side)[0]
    return out.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def plan_crops(attacked: pd.DataFrame, mode: str, min_side: int, criterion: str = "side",
               corner: str = "top-left", corner_frac: float = 0.3) -> pd.DataFrame:
    """One row per attacked image: its crop rectangle, or valid=False and the reason.

    attacked needs columns boxes, height, width, and scale (stored / original pixels) when
    min_side counts original pixels.
    """
    rects, reasons = [], []
    scales = attacked["scale"] if "scale" in attacked else np.ones(len(attacked))
    for boxes, h, w, scale in zip(attacked["boxes"], attacked["height"], attacked["width"],
                                  scales):
        if mode == "periphery":
            rect, reason = periphery_crop(boxes, int(h), int(w), min_side, criterion,
                                          float(scale))
        elif mode == "corner":
            rect, reason = corner_crop(int(h), int(w), corner_frac, corner), ""
        else:
            raise ValueError(f"unknown crop mode {mode!r}; use 'periphery' or 'corner'")
        rects.append(rect or Rect(-1, -1, -1, -1))
        reasons.append(reason)
    plan = attacked.drop(columns=["boxes"]).reset_index(drop=True)
    plan[["x0", "y0", "x1", "y1"]] = np.array(rects, dtype=np.int64).reshape(-1, 4)
    plan["valid"] = [r == "" for r in reasons]
    plan["reason"] = reasons
    return plan


def run(images_path: str, index_path: str, split_path: str, crops_path: str, table_path: str,
        *, mode: str, side: int, min_side: int, criterion: str = "side",
        corner: str = "top-left", corner_frac: float = 0.3,
        min_side_in: str = "original") -> None:
    from ..core.store import create_images, map_large_blocks, open_images, read_index
    map_large_blocks()  # its scattered reads would otherwise grow with the chunks read
    split = pd.read_parquet(split_path)
    attacked = split[split["attacked"]].reset_index(drop=True)
    index = read_index(index_path, ["boxes", "height", "width", "scale"],
                       rows=attacked["row"].to_numpy())
    columns = ["boxes", "height", "width"]
    if min_side_in == "original" and "scale" in index:
        columns.append("scale")
    attacked = attacked.drop(columns=["height", "width"], errors="ignore").join(
        index[columns], on="row")
    plan = plan_crops(attacked, mode, min_side, criterion, corner, corner_frac)
    valid = plan[plan["valid"]]
    # small chunks for large crops: the correlation classifier reads them a batch at a time
    chunk = max(1, min(256, CHUNK_BYTES // (side * side * 3)))
    out = create_images(crops_path, len(valid), (side, side), chunk)
    images = open_images(images_path)
    block_rows = chunk * max(1, BLOCK_ROWS // chunk)
    for start in range(0, len(valid), block_rows):
        block = valid[start:start + block_rows]
        out[start:start + len(block)] = crop_block(images, block, side)
    plan["crop_row"] = -1
    plan.loc[valid.index, "crop_row"] = np.arange(len(valid))
    plan.to_parquet(table_path, index=False)


def crop_block(images, plan: pd.DataFrame, side: int) -> np.ndarray:
    """The crops of a block of plan rows, (n, side, side, 3) uint8: their images are read
    together (`core.store.read_rows`), each once."""
    from ..core.store import read_rows
    rows, which = np.unique(plan["row"].to_numpy(np.int64), return_inverse=True)
    canvases = read_rows(images, rows)
    rects = plan[["x0", "y0", "x1", "y1"]].to_numpy(np.int64)
    return np.stack([crop_resize(canvases[w], Rect(*map(int, r)), side)
                     for w, r in zip(which, rects)])
