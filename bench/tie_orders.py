"""How much the three rule choices that differ from the authors' released code move a finished
run's scores (docs/differences.md, "Rules the authors' code leaves to chance").

For every pair of k-NN tables of a results folder (a model pair at an epoch, crop,
embedding and k), the swap-averaged déjà vu score at p on the attacked sets A and B:

- `dejavu`: as the workflow computes it (definitions §4);
- `class_order`: with confidences summed in class order, as dejavu did before issue 31
  (equal histograms in other classes could then differ in the last bit, and the rounding,
  not the mean-distance rule, ordered them);
- `count`: the top-p set of int(n·p) images instead of ceil(n·p) (at least one);
- `pred`: prediction ties go to the smallest class id instead of the smaller summed
  neighbour distance;
- `conf`: confidence ties in a random order instead of by mean neighbour distance, over
  `--orders` random orders (min, median, max);
- `authors`: all three at once, over the same random orders (min, max): the range the
  authors' code can print for these embeddings, as its loader's order falls.

`tied` is the number of crops of the target's top-p set (A's half) whose confidence
another attacked crop shares: where it is large, the tie rule matters.

    python bench/tie_orders.py RESULTS_FOLDER [--p 0.2] [--orders 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from dejavu.attack.score import make_half, top_count


def authors_count(n: int, p: float) -> int:
    """The authors' top-p count: int(n·p), which can be 0 (an empty set: no score)."""
    return int(n * p)


def histograms(knn: pd.DataFrame) -> np.ndarray:
    """(crops, classes) vote counts, from each crop's voted classes and their votes."""
    classes = 1 + max(int(knn["label"].max()), *(int(np.max(v)) for v in knn["voted"]))
    hist = np.zeros((len(knn), classes), np.int64)
    for i, (voted, votes) in enumerate(zip(knn["voted"], knn["votes"])):
        hist[i, np.asarray(voted)] = votes
    return hist


def smallest_id_correct(knn: pd.DataFrame) -> pd.DataFrame:
    """The table with `correct` recomputed for prediction ties going to the smallest id."""
    hist = histograms(knn)
    return knn.assign(correct=np.argmax(hist, axis=1) == knn["label"].to_numpy())


def class_order_confidence(knn: pd.DataFrame) -> pd.DataFrame:
    """The table with its confidences summed in class order (dejavu before issue 31)."""
    hist = histograms(knn)
    p = hist / hist.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return knn.assign(confidence=np.where(p > 0, p * np.log(p), 0.0).sum(axis=1))


def half_score(half, p: float, count, tie_keys=None) -> float:
    """acc_T(p) - acc_R(p) of one half; `tie_keys` (t, r): the order among equal confidences
    (default: mean distance, then id)."""
    accs = []
    for correct, conf, dist, keys in (
            (half.correct_t, half.confidence_t, half.distance_t, tie_keys and tie_keys[0]),
            (half.correct_r, half.confidence_r, half.distance_r, tie_keys and tie_keys[1])):
        order = (np.lexsort((half.sample_id, dist, -conf)) if keys is None
                 else np.lexsort((keys, -conf)))
        n = count(len(order), p)
        accs.append(float(correct[order[:n]].mean()) if n else math.nan)
    return accs[0] - accs[1]


def scores(a: pd.DataFrame, b: pd.DataFrame, p: float, orders: int, seed: int) -> dict:
    halves = [make_half(a, b, "A"), make_half(b, a, "B")]
    a_id, b_id = smallest_id_correct(a), smallest_id_correct(b)
    halves_id = [make_half(a_id, b_id, "A"), make_half(b_id, a_id, "B")]

    def mean(values):
        return float(np.mean(values))
    a_sum, b_sum = class_order_confidence(a), class_order_confidence(b)
    halves_sum = [make_half(a_sum, b_sum, "A"), make_half(b_sum, a_sum, "B")]
    row = {"dejavu": mean([half_score(h, p, top_count) for h in halves]),
           "class_order": mean([half_score(h, p, top_count) for h in halves_sum]),
           "count": mean([half_score(h, p, authors_count) for h in halves]),
           "pred": mean([half_score(h, p, top_count) for h in halves_id])}
    rng = np.random.default_rng(seed)
    conf, authors = [], []
    for _ in range(orders):
        keys = [(rng.permutation(len(h.sample_id)), rng.permutation(len(h.sample_id)))
                for h in halves]
        conf.append(mean([half_score(h, p, top_count, k) for h, k in zip(halves, keys)]))
        authors.append(mean([half_score(h, p, authors_count, k)
                             for h, k in zip(halves_id, keys)]))
    row.update(conf_min=min(conf), conf_median=float(np.median(conf)), conf_max=max(conf),
               authors_min=min(authors), authors_max=max(authors))
    first = halves[0]
    order = np.lexsort((first.sample_id, first.distance_t, -first.confidence_t))
    top = first.confidence_t[order[:top_count(len(order), p)]]
    values, counts = np.unique(first.confidence_t, return_counts=True)
    shared = set(values[counts > 1])
    row["tied"] = int(sum(c in shared for c in top))
    row["top"] = len(top)
    return row


def pairs(results: Path):
    """(label, table A, table B) of every k-NN table pair under `results`."""
    for path_a in sorted(results.glob("**/knn/**/A/epoch*/*.parquet")):
        path_b = Path(str(path_a).replace("/A/epoch", "/B/epoch"))
        if path_b.is_file():
            label = str(path_a.relative_to(results)).split("/knn/", 1)[1]
            yield label.replace("/A/", "/").removesuffix(".parquet"), path_a, path_b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--p", type=float, default=0.2)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for label, path_a, path_b in pairs(args.results):
        a, b = pd.read_parquet(path_a), pd.read_parquet(path_b)
        rows.append({"pair": label, **scores(a, b, args.p, args.orders, args.seed)})
    if not rows:
        raise SystemExit(f"no k-NN table pairs under {args.results}")
    with pd.option_context("display.width", 250, "display.max_columns", 20,
                           "display.float_format", "{:+.3f}".format):
        print(pd.DataFrame(rows).set_index("pair").to_string())


if __name__ == "__main__":
    main()
