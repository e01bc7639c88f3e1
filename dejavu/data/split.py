"""Target, reference, held-out and public sets from one labelled pool (definitions §1).

The split depends only on the seed and the sorted image ids, so it is the same on every
file system. Per class, one seeded shuffle orders the annotated images (`bbox`) and the
box-less ones; the held-out set is reserved from `bbox` first, the rest is halved between A
and B, box-less images top both up to `npc`, and what remains is public. Where the index has
a validation pool (`pool` "heldout": ImageNet's validation images), that pool is the
held-out set, whole, and only the train pool is split.

Train-set-size sweeps are nested: sets for `npc` are prefixes of the sets for `max_npc`, and
the public set is the one `max_npc` leaves, so it is fixed across the sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SETS = ("A", "B", "heldout", "public", "public_test")


@dataclass(frozen=True)
class SplitConfig:
    npc: int                               # images per class in each of A and B
    max_npc: int | None = None             # largest npc of the sweep (default: npc)
    heldout_fraction: float | None = None  # share of `bbox` held out; None: bbox_A + bbox_B
    public_test_per_class: int = 100
    seed: int = 0
    attack_boxless: bool = False           # treat box-less images as attackable (corner crop)


def split_class(ids: np.ndarray, has_box: np.ndarray, cfg: SplitConfig, label: int) -> dict:
    """Positions (into `ids`) of each set for one class. `ids` must be sorted."""
    rng = np.random.default_rng([cfg.seed, label])
    order = rng.permutation(len(ids))
    bbox = order[has_box[order]]
    nobox = order[~has_box[order]]
    max_npc = cfg.max_npc or cfg.npc
    if cfg.heldout_fraction is None:
        # as many as bbox_A and bbox_B together: the control is attacked in two halves (one
        # per target model), each then as large as the set the real test attacks
        n_heldout = min(2 * max_npc, len(bbox) // 2)
    else:
        n_heldout = int(round(cfg.heldout_fraction * len(bbox)))
    heldout, rest = bbox[:n_heldout], bbox[n_heldout:]
    half = len(rest) // 2
    num_max, num = min(half, max_npc), min(half, cfg.npc)
    pool_a, pool_b = rest[:num_max], rest[num_max:2 * num_max]
    shared_max, shared = max_npc - num_max, cfg.npc - num
    if shared_max > len(nobox):
        raise ValueError(
            f"class {label}: {max_npc} images per class need {shared_max} box-less images to "
            f"share between A and B, but only {len(nobox)} exist; lower split.npc")
    leftover = np.concatenate([rest[2 * num_max:], nobox[shared_max:]])
    leftover = leftover[np.argsort(np.argsort(order)[leftover], kind="stable")]  # shuffle order
    n_test = min(cfg.public_test_per_class, len(leftover))
    return {
        "A": np.concatenate([pool_a[:num], nobox[:shared]]),
        "B": np.concatenate([pool_b[:num], nobox[:shared]]),
        "bbox_A": pool_a[:num],
        "bbox_B": pool_b[:num],
        "heldout": heldout,
        "public_test": leftover[:n_test],
        "public": leftover[n_test:],
    }


def make_split(index: pd.DataFrame, cfg: SplitConfig) -> pd.DataFrame:
    """Long table, one row per (image, set): row, id, label, set, attacked, height, width.

    `row` points into the dataset store. An image shared by A and B appears twice. Only
    bbox_A, bbox_B and the held-out set are attacked (they are the images with a known object);
    with `attack_boxless` every image counts as annotated (a dataset without boxes, attacked
    with the corner crop).
    """
    if cfg.max_npc is not None and cfg.max_npc < cfg.npc:
        raise ValueError(f"max_npc ({cfg.max_npc}) is below npc ({cfg.npc})")
    boxes = index["n_boxes"] if "n_boxes" in index else index["boxes"].map(len)
    has_box = (boxes > 0) | cfg.attack_boxless
    parts = []
    if "pool" in index:  # validation images: the held-out set, whole, attacked where boxed
        held = index.index[index["pool"] == "heldout"].to_numpy()
        if len(held):
            parts.append(split_rows(index, held, "heldout", index.loc[held, "label"],
                                    has_box.loc[held].to_numpy()))
        index = index[index["pool"] != "heldout"]
    for label, members in index.groupby("label", sort=True):
        members = members.sort_values("id", kind="stable")
        rows = members.index.to_numpy()
        sets = split_class(members["id"].to_numpy(), has_box.loc[rows].to_numpy(), cfg,
                           int(label))
        attacked = np.concatenate([rows[sets[name]] for name in ("bbox_A", "bbox_B", "heldout")])
        for name in SETS:
            chosen = rows[sets[name]]
            parts.append(split_rows(index, chosen, name, int(label), np.isin(chosen, attacked)))
    order = ["row", "id", "label", "set", "attacked", "height", "width"]
    return pd.concat(parts, ignore_index=True)[order]


def split_rows(index: pd.DataFrame, chosen: np.ndarray, name: str, label,
               attacked) -> pd.DataFrame:
    """The split's rows of the index rows `chosen`, all in set `name`."""
    return pd.DataFrame({
        "row": chosen.astype(np.int64),
        "id": index.loc[chosen, "id"].to_numpy(),
        "label": np.asarray(label, dtype=np.int64) if np.ndim(label) else int(label),
        "set": name,
        "attacked": attacked,
        "height": index.loc[chosen, "height"].to_numpy().astype(np.int64),
        "width": index.loc[chosen, "width"].to_numpy().astype(np.int64),
    })


def split_sizes(split: pd.DataFrame) -> pd.DataFrame:
    """Images per class and set (attacked ones counted apart), for the split summary."""
    table = split.assign(set=np.where(split["attacked"] & split["set"].isin(["A", "B"]),
                                      "bbox_" + split["set"], split["set"]))
    counts = pd.crosstab(table["label"], table["set"])
    for name in ("A", "B"):
        counts[name] = counts.get(name, 0) + counts.get(f"bbox_{name}", 0)
    return counts.reset_index()


def check_disjoint(split: pd.DataFrame) -> None:
    """A, B, held-out and public share no image, except the box-less ones A and B share."""
    by_set = {name: set(split.loc[split["set"] == name, "id"]) for name in SETS}
    shared_ab = by_set["A"] & by_set["B"]
    attacked_ab = set(split.loc[split["attacked"] & split["set"].isin(["A", "B"]), "id"])
    if shared_ab & attacked_ab:
        raise AssertionError("an attacked image is in both A and B")
    for i, a in enumerate(SETS):
        for b in SETS[i + 1:]:
            if {a, b} != {"A", "B"} and by_set[a] & by_set[b]:
                raise AssertionError(f"sets {a} and {b} overlap")


def read_for_split(index_path: str) -> pd.DataFrame:
    """What the split needs of the index, labelled by store row: id, label, height, width,
    the pool where the index has one (validation images) and each image's number of boxes (`n_boxes`; the boxes themselves and the synthetic
    images' details are not read: at ImageNet's 1.28M rows they would be most of the job's
    memory as Python objects)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ..core.store import read_index
    columns = ["id", "label", "height", "width"]
    if "pool" in pq.read_schema(index_path).names:
        columns.append("pool")
    index = read_index(index_path, columns)
    boxes = pq.read_table(index_path, columns=["boxes"])["boxes"]
    index["n_boxes"] = pc.fill_null(pc.list_value_length(boxes), 0).to_numpy()
    return index


def run(index_path: str, split_path: str, sizes_path: str, **params) -> None:
    split = make_split(read_for_split(index_path), SplitConfig(**params))
    check_disjoint(split)
    split.to_parquet(split_path, index=False)
    split_sizes(split).to_csv(sizes_path, index=False)


def read_set(images_path: str, split_path: str, name: str, side: int | None = None,
             rows: np.ndarray | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """The images of split set `name` (or of its sorted `rows`) as (n, side, side, 3) uint8,
    read the way the eval transform reads them (`SetImages`), and their split rows in row
    order: the whole set in memory, for stages whose sets are small (RCDM's examples)."""
    images = SetImages(images_path, split_path, name, side, rows)
    return images.read(np.arange(len(images))), images.chosen


class SetImages:
    """One split set's images, read a batch at a time by position in the set (row order):
    the image's own region, shorter side to `side` (default: the stored canvas), centre
    square, as (n, side, side, 3) uint8 -- what the eval transform gives. A stage that reads
    through it holds its batches, not the set. Picklable (paths and the set's split rows):
    data-parallel processes each open the store themselves."""

    BLOCK = 1024  # images resized at once

    def __init__(self, images_path: str, split_path: str, name: str, side: int | None = None,
                 rows: np.ndarray | None = None):
        split = pd.read_parquet(split_path)
        chosen = split[split["set"] == name].sort_values("row")
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64)
            have = chosen["row"].to_numpy()
            at = np.searchsorted(have, rows)
            if len(have) == 0 or (at >= len(have)).any() or \
                    (have[np.minimum(at, len(have) - 1)] != rows).any():
                raise ValueError(f"rows asked for are not all in split set {name!r}")
            chosen = chosen.iloc[at]
        self.path, self.chosen = str(images_path), chosen
        self._store = None
        canvas = self.store.shape[1]
        self.rows = chosen["row"].to_numpy()
        self.heights = chosen["height"].to_numpy() if "height" in chosen else \
            np.full(len(chosen), canvas)
        self.widths = chosen["width"].to_numpy() if "width" in chosen else \
            np.full(len(chosen), canvas)
        self.side = side or canvas
        self.stored_as_is = self.side == canvas and bool((self.heights == canvas).all()
                                                          and (self.widths == canvas).all())

    @property
    def store(self):
        from ..core.store import open_images
        if self._store is None:
            self._store = open_images(self.path)
        return self._store

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_store": None}

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labels(self) -> np.ndarray:
        return self.chosen["label"].to_numpy()

    @property
    def image_bytes(self) -> int:
        return self.side * self.side * 3

    def read(self, positions) -> np.ndarray:
        """Images at `positions` of the set, in the order given."""
        from ..core.store import read_rows, read_square
        positions = np.asarray(positions, dtype=np.int64)
        order = np.argsort(positions, kind="stable")
        at = positions[order]  # sorted: the store is read in row order
        if self.stored_as_is:
            out = read_rows(self.store, self.rows[at])
        else:
            out = np.empty((len(at), self.side, self.side, 3), np.uint8)
            for i in range(0, len(at), self.BLOCK):
                part = at[i:i + self.BLOCK]
                x = read_square(self.store, self.rows[part], self.heights[part],
                                self.widths[part], self.side)
                out[i:i + self.BLOCK] = (x * 255).round().byte().permute(0, 2, 3, 1).numpy()
        back = np.empty_like(out)
        back[order] = out
        return back

    def read_stored(self, positions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stored canvases at `positions`, in the order given, with each one's region
        (heights, widths): what `read` resizes, left for the device to resize
        (`core.store.square`, as `training.loader` does)."""
        from ..core.store import read_rows
        positions = np.asarray(positions, dtype=np.int64)
        order = np.argsort(positions, kind="stable")
        at = positions[order]  # sorted: the store is read in row order
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return (read_rows(self.store, self.rows[at])[back], self.heights[positions],
                self.widths[positions])

    def blocks(self, size: int = BLOCK):
        """The whole set in row order, `size` images at a time."""
        for i in range(0, len(self), size):
            yield self.read(np.arange(i, min(i + size, len(self))))

    def digest(self, h) -> None:
        """Feed the set's stored pixels (before resizing), regions and side to hashlib `h`:
        one pass over the store, without the cost of resizing."""
        from ..core.store import read_rows
        h.update(repr((self.side, self.rows.tolist(), self.heights.tolist(),
                       self.widths.tolist())).encode())
        for i in range(0, len(self), self.BLOCK):
            h.update(np.ascontiguousarray(read_rows(self.store, self.rows[i:i + self.BLOCK]))
                     .tobytes())
