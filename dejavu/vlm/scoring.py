"""The vlm_test stage (definitions §14): a target against a reference on their embedding
stores, in both directions, with the held-out control, bootstrap intervals, the recall
CCDF of each model and example records.

Scored records are taken `query_rows` at a time: their captions' embeddings are read from
the stores and searched against the public records' image (t2i) or caption (t2t)
embeddings, streamed a chunk at a time through the k-NN attack's exact search
(`attack.knn.torch_search`). What is held beyond one block of queries is the public
records' objects (P x V bools) and, per scored record, 12 bytes per model, k and mode
(precision, recall, hits): `docs/cluster.md` gives the stage's memory formula.
"""

from __future__ import annotations

import json

import numpy as np

from . import attack, data, embeddings, gaps, objects

CCDF_POINTS = 51   # recall thresholds 0, 0.02, ..., 1 of the CCDF curves
EXAMPLES = 5       # example records kept for the report, and the neighbours shown for each


def directions(split_path: str, pair: bool = True) -> dict[str, list[tuple]]:
    """Per control, (target, reference, scored rows) of each direction: with a pair of
    VLMs, A against B on A's records and B against A on B's, and on the held-out records
    alternate halves; a single VLM (trained elsewhere on A, `pair` False), A on A's records
    and on all the held-out records, with no reference VLM."""
    held = data.set_rows(split_path, "heldout")
    if not pair:
        return {"none": [("A", None, data.set_rows(split_path, "A"))],
                "heldout": [("A", None, held)]}
    return {"none": [("A", "B", data.set_rows(split_path, "A")),
                     ("B", "A", data.set_rows(split_path, "B"))],
            "heldout": [("A", "B", held[0::2]), ("B", "A", held[1::2])]}


def neighbours(store, base: str, queries: np.ndarray, public: np.ndarray, k: int,
               device: str) -> np.ndarray:
    """(n, k) positions in `public` of the queries' k nearest public records by cosine,
    the database streamed from the store a chunk at a time."""
    from ..attack.knn import torch_search
    return torch_search(embeddings.blocks_of(store, base, public), len(public), queries, k,
                        metric="cosine", device=device)[1]


def scored(store, search: str, rows: np.ndarray, true: np.ndarray, public: np.ndarray,
           public_objects: np.ndarray, ks, modes, query_rows: int, device: str) -> dict:
    """Per (k, mode): one model's per-record (precision, recall, hits) on the records at
    `rows`, their captions queried `query_rows` at a time."""
    base = "image" if search == "t2i" else "text"
    parts = []
    for lo in range(0, len(rows), query_rows):
        queries = embeddings.rows_of(store, "text", rows[lo:lo + query_rows])
        found = neighbours(store, base, queries, public, max(ks), device)
        parts.append(attack.per_record(found, public_objects, true[lo:lo + query_rows], ks,
                                       modes))
    return {key: tuple(np.concatenate([p[key][i] for p in parts]) for i in range(3))
            for key in parts[0]}


def intervals(both: list[tuple[dict, dict]], key, n_boot: int, seed: int) -> dict[str, float]:
    """The 95 % bootstrap intervals of the swap-averaged precision and recall gaps at one
    (k, mode): each direction's records resampled, the directions averaged."""
    boots = [attack.bootstrap(t[key], r[key], n_boot, seed) for t, r in both]
    out = {}
    for name in ("precision_gap", "recall_gap"):
        pair = sum(b[name] for b in boots) / len(boots)
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = (
            float(v) for v in np.nanquantile(pair, [0.025, 0.975]))
    return out


def ccdf_rows(both: list[tuple[dict, dict]], meta: dict) -> list[dict]:
    """Per (k, mode): P(recall > t) of the target and of the reference over the scored
    records of both directions, at CCDF_POINTS thresholds."""
    grid = np.linspace(0, 1, CCDF_POINTS)
    rows = []
    for key in both[0][0]:
        curves = [gaps.ccdf(np.concatenate([pair[m][key][1] for pair in both]), grid)
                  for m in (0, 1)]
        rows.append({**meta, "k": key[0], "mode": key[1], "recall": grid.tolist(),
                     "target": curves[0].tolist(), "reference": curves[1].tolist()})
    return rows


def examples(stores: dict, plan, both, records, public: np.ndarray,
             public_objects: np.ndarray, key, unnamed_only: bool, device: str) -> dict:
    """The records of the first direction the target recovers most objects of beyond the
    reference (at `key`, text-to-image): caption, true objects, and per model its EXAMPLES
    nearest public records with the objects it predicts, precision and recall."""
    target, reference, rows = plan
    h_t, h_r = both[0][0][key][2], both[0][1][key][2]
    out = []
    for i in np.argsort(-(h_t - h_r), kind="stable")[:EXAMPLES]:
        row = rows[i:i + 1]
        true = records.objects(row, unnamed_only)
        entry = {"row": int(row[0]), "caption": records.captions(row)[0],
                 "objects": np.flatnonzero(true[0]).tolist()}
        for role, name in (("target", target), ("reference", reference)):
            query = embeddings.rows_of(stores[name], "text", row)
            found = neighbours(stores[name], "image", query, public, max(key[0], EXAMPLES),
                               device)
            predicted = objects.predict(public_objects[found[:, :key[0]]], key[1])
            p, r, _ = objects.precision_recall(predicted, true)
            entry[role] = {"model": name, "neighbours": public[found[0, :EXAMPLES]].tolist(),
                           "predicted": np.flatnonzero(predicted[0]).tolist(),
                           "precision": float(p[0]), "recall": float(r[0])}
        out.append(entry)
    return {"k": key[0], "mode": key[1], "records": out}


def pair_rows(both: list[tuple[dict, dict]], meta: dict, ks, modes, n_boot: int,
              seed: int) -> list[dict]:
    """Per k and mode: the two directions' gaps averaged, with bootstrap intervals."""
    averaged = attack.averaged(*({key: gaps.gaps(*t[key], *r[key]) for key in t}
                                 for t, r in both))
    return [{**meta, "k": k, "mode": mode, **averaged[k, mode],
             **intervals(both, (k, mode), n_boot, seed)} for k in ks for mode in modes]


def agreement(both: list[tuple[dict, dict]], one: list[dict], key) -> list[list[int]]:
    """Records of both directions counted by which test finds them memorized at `key` --
    the two-model test (the target's recall above the reference model's) and the one-model
    test (above the reference text model's): [[both, two-model only], [one-model only,
    neither]]."""
    two = np.concatenate([t[key][1] > r[key][1] for t, r in both])
    single = np.concatenate([t[key][1] > g[key][1] for (t, _), g in zip(both, one)])
    return [[int((two & single).sum()), int((two & ~single).sum())],
            [int((~two & single).sum()), int((~two & ~single).sum())]]


def run_test(store: str, split_path: str, stores_at: dict[str, str], out: str, *,
             ks: list[int], modes: list[str], searches: list[str], unnamed_only: bool,
             n_boot: int, seed: int, meta: dict, query_rows: int = 65_536,
             reference: str | None = None, device: str = "cpu") -> None:
    """The vlm_test stage: per control (none, held-out; the untrained control is this stage
    at epoch 0), search, k and prediction mode, the swap-averaged gaps with bootstrap
    intervals; the real test's recall CCDFs and, text-to-image, its example records. With
    a reference text model's store (`stores_at["g"]`, named `reference`), the one-model
    test too (each VLM against g's text-to-text search, `test` vlm_onemodel) and, per
    search, which records each test finds memorized. Without a store "B" (one VLM, trained
    elsewhere on A) only the one-model test runs, its CCDFs against g's."""
    stores = {name: embeddings.open_store(path) for name, path in stores_at.items()}
    records, public = data.Records(store), data.set_rows(split_path, "public")
    public_objects = records.objects(public)
    key = (min(ks, key=lambda k: abs(k - 10)), "top10" if "top10" in modes else modes[-1])
    pair = "B" in stores
    out_of = {"rows": [], "ccdf": [], "examples": {}, "agreement": []}
    for control, halves in directions(split_path, pair).items():
        truths = [records.objects(r, unnamed_only) for _, _, r in halves]
        find = lambda name, search, r, true: scored(  # noqa: E731
            stores[name], search, r, true, public, public_objects, ks, modes, query_rows,
            device)
        by_g = ([find("g", "t2t", r, true) for (_, _, r), true in zip(halves, truths)]
                if "g" in stores else None)
        for search in searches:
            where = {**meta, "control": control, "search": search}
            targets = [find(t, search, r, true) for (t, _, r), true in zip(halves, truths)]
            both = [(t, find(ref, search, r, true)) for t, (_, ref, r), true
                    in zip(targets, halves, truths)] if pair else []
            one = list(zip(targets, by_g)) if by_g is not None else []
            if pair:
                out_of["rows"] += pair_rows(both, {**where, "test": "vlm"}, ks, modes, n_boot,
                                            seed)
            if one:
                out_of["rows"] += pair_rows(one, {**where, "test": "vlm_onemodel",
                                                  "reference": reference}, ks, modes, n_boot,
                                            seed)
            if control != "none":
                continue
            out_of["ccdf"] += ccdf_rows(both or one, {**meta, "search": search})
            if pair and one:
                out_of["agreement"].append({**where, "k": key[0], "mode": key[1],
                                            "counts": agreement(both, by_g, key)})
            if pair and search == "t2i":
                out_of["examples"] = examples(stores, halves[0], both, records, public,
                                              public_objects, key, unnamed_only, device)
    with open(out, "w") as f:
        json.dump(out_of, f, indent=1)
