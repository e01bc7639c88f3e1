"""The one-model test (definitions §5; Kokhlikyan et al., NeurIPS 2024).

The reference SSL model of the two-model test is replaced by a correlation classifier `g`
(`correlation.py`) trained on crops of images outside the attacked set and the public set.
Each half attacks one set with the target's k-NN and the classifier trained on the other
set's crops:
- population: acc_KNN_T(p) - acc_g(p), each over its own top-p by its own confidence -- the
  two-model score with g in the reference's place, so `score.evaluate` computes it, with
  the same bootstrap interval and curves (g has no neighbour distance: its confidence ties
  are broken by sample id);
- per sample: the memorization confidence H(g(crop)) - H(p_T(crop)) of the images KNN_T
  labels right and g wrong (higher = more surely memorized);
- agreement with the two-model test where a reference model exists: the share each test
  calls memorized (T right and R wrong; T right and g wrong), and their overlap.

A model the workflow did not train (an external checkpoint) has only the A half.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..attack.knn import read_scored
from ..attack.score import Half, evaluate

OTHER = {"A": "B", "B": "A"}


def aligned(knn: pd.DataFrame, classifier: pd.DataFrame, attacked: str,
            part: slice = slice(None)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The target's k-NN rows and the classifier's rows of set `attacked`, sorted by id
    (then `part` of them); the classifier must not have trained on them."""
    t = knn[knn["set"] == attacked].set_index("id").sort_index().iloc[part]
    g = classifier[classifier["set"] == attacked].set_index("id").sort_index().iloc[part]
    if not t.index.equals(g.index):
        raise ValueError(f"the k-NN and correlation classifier tables hold different "
                         f"{attacked} crops")
    if g["trained"].any():
        raise ValueError(f"the correlation classifier trained on {int(g['trained'].sum())} "
                         f"of the {attacked} crops it is asked to attack")
    return t, g


def make_half(knn: pd.DataFrame, classifier: pd.DataFrame, attacked: str,
              part: slice = slice(None)) -> Half:
    """One half with g in the reference's place."""
    return half_of(*aligned(knn, classifier, attacked, part))


def half_of(t: pd.DataFrame, g: pd.DataFrame) -> Half:
    """The Half of aligned k-NN and classifier rows (g's distance: none, ties by id)."""
    return Half(t.index.to_numpy(), t["correct"].to_numpy(), t["confidence"].to_numpy(),
                t["mean_distance"].to_numpy(), g["correct"].to_numpy(),
                g["confidence"].to_numpy(), np.zeros(len(g)))


def memorization_confidence(confidence_t: np.ndarray, confidence_g: np.ndarray,
                            correct_t: np.ndarray, correct_g: np.ndarray) -> np.ndarray:
    """H(g) - H(p_T) (= confidence_T - confidence_g, confidences being negative entropies)
    where KNN_T is right and g wrong; NaN elsewhere."""
    value = np.asarray(confidence_t, float) - np.asarray(confidence_g, float)
    return np.where(np.asarray(correct_t, bool) & ~np.asarray(correct_g, bool), value, np.nan)


def agreement(correct_t: np.ndarray, correct_r: np.ndarray,
              correct_g: np.ndarray) -> dict[str, float]:
    """Shares of one half's images called memorized by the two-model test (T right, R
    wrong), by the one-model test (T right, g wrong), by both, and the overlap of the two
    calls (both / either; NaN when neither calls any)."""
    t, r, g = (np.asarray(v, bool) for v in (correct_t, correct_r, correct_g))
    two, one = t & ~r, t & ~g
    either = (two | one).sum()
    return {"memorized_two_model": float(two.mean()), "memorized_one_model": float(one.mean()),
            "memorized_both": float((two & one).mean()),
            "memorized_overlap": float((two & one).sum() / either) if either else float("nan")}


def sample_table(knn: pd.DataFrame, classifier: pd.DataFrame, attacked: str, target: str,
                 reference: pd.DataFrame | None, part: slice = slice(None)) -> pd.DataFrame:
    """Per attacked image of one half: both verdicts, confidences, the memorization
    confidence, and the reference k-NN's verdict where there is one."""
    return table_of(*aligned(knn, classifier, attacked, part), attacked, target, reference)


def table_of(t: pd.DataFrame, g: pd.DataFrame, attacked: str, target: str,
             reference: pd.DataFrame | None) -> pd.DataFrame:
    """`sample_table` of aligned k-NN and classifier rows."""
    out = pd.DataFrame({
        "id": t.index, "set": attacked, "target": target, "label": t["label"].to_numpy(),
        "correct_target": t["correct"].to_numpy(), "confidence_target": t["confidence"].to_numpy(),
        "correct_classifier": g["correct"].to_numpy(),
        "confidence_classifier": g["confidence"].to_numpy()})
    out["memorization"] = memorization_confidence(out["confidence_target"],
                                                  out["confidence_classifier"],
                                                  out["correct_target"], out["correct_classifier"])
    if reference is not None:
        r = reference[reference["set"] == attacked].set_index("id")
        out["correct_reference"] = r.loc[t.index, "correct"].to_numpy()
    return out


def halves(knn_a: pd.DataFrame, knn_b: pd.DataFrame | None, g_b: pd.DataFrame,
           g_a: pd.DataFrame | None, heldout: bool, split_heldout: bool = True) -> list[tuple]:
    """(knn, classifier, attacked set, target name, reference knn, part) per half of a test:
    the real test (or the untrained control) attacks A with model A and g trained on B, and B with model
    B and g trained on A; heldout attacks the held-out images like the two-model control
    (alternating between the targets when split_heldout). Without model B, only the A half
    (and the whole held-out set with model A)."""
    if heldout:
        if knn_b is None:
            return [(knn_a, g_b, "heldout", "A", None, slice(None))]
        if split_heldout:
            return [(knn_a, g_b, "heldout", "A", knn_b, slice(0, None, 2)),
                    (knn_b, g_a, "heldout", "B", knn_a, slice(1, None, 2))]
        return [(knn_a, g_b, "heldout", "A", knn_b, slice(None)),
                (knn_b, g_a, "heldout", "B", knn_a, slice(None))]
    if knn_b is None:
        return [(knn_a, g_b, "A", "A", None, slice(None))]
    return [(knn_a, g_b, "A", "A", knn_b, slice(None)), (knn_b, g_a, "B", "B", knn_a,
                                                         slice(None))]


def summarize(samples: pd.DataFrame) -> dict[str, float]:
    """Swap-averaged agreement and memorization-confidence figures of a test's samples."""
    per_half = []
    for _, half in samples.groupby("target", sort=True):
        row = {"memorized_one_model": float((half["correct_target"]
                                             & ~half["correct_classifier"]).mean()),
               "memorization_mean": float(half["memorization"].mean())
               if half["memorization"].notna().any() else float("nan")}
        if "correct_reference" in half:
            row.update(agreement(half["correct_target"], half["correct_reference"],
                                 half["correct_classifier"]))
        per_half.append(row)
    return {key: _nanmean([h[key] for h in per_half]) for key in per_half[0]}


def _nanmean(values: list[float]) -> float:
    """The mean of the numbers that are not NaN (NaN when none is)."""
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def run(knn_a: str, g_b: str, out_json: str, out_samples: str, out_curves: str, *,
        knn_b: str | None = None, g_a: str | None = None, epoch: int, p: float,
        p_grid: list[float], n_boot: int, seed: int, combination: dict, classifier: str,
        split_heldout: bool = True) -> None:
    """One-model test of one (model, epoch, crop, embedding, k, classifier); `combination`
    holds the summary columns that identify it. knn_b/g_a: the B half (models the workflow
    trained in pairs); without them only A is attacked."""
    said = ["id", "set", "trained", "correct", "confidence"]  # of the classifier's tables
    a, g_on_b = read_scored(knn_a, "label"), pd.read_parquet(g_b, columns=said)
    b = read_scored(knn_b, "label") if knn_b else None
    g_on_a = pd.read_parquet(g_a, columns=said) if g_a else None
    controls = ["untrained" if epoch == 0 else "none"]
    heldout_trained = g_on_b.loc[g_on_b["set"] == "heldout", "trained"].any()
    if epoch > 0 and (a["set"] == "heldout").sum() >= 2 and not heldout_trained:
        controls.append("heldout")  # not when the classifiers learned from the held-out crops
    rows, tables, samples = [], [], []
    for control in controls:
        parts = halves(a, b, g_on_b, g_on_a, control == "heldout", split_heldout)
        joined = [(aligned(k, g, s, part), s, target, r) for k, g, s, target, r, part in parts]
        summary, curve_table, _ = evaluate([half_of(*pair) for pair, *_ in joined],
                                        p, p_grid, n_boot, seed)
        per_sample = pd.concat([table_of(*pair, s, target, r) for pair, s, target, r in joined],
                               ignore_index=True)
        summary = {("acc_classifier" + key.removeprefix("acc_reference")
                    if key.startswith("acc_reference") else key): value
                   for key, value in summary.items()
                   if key not in ("memorized", "misrepresented", "correlated", "unassociated")}
        rows.append({**combination, "epoch": epoch, "control": control, "classifier": classifier,
                     "p": p, "halves": len(parts), **summary, **summarize(per_sample)})
        tables.append(curve_table.rename(columns=lambda c: c.replace("acc_reference",
                                                                     "acc_classifier"))
                      .assign(control=control))
        samples.append(per_sample.assign(control=control))
    with open(out_json, "w") as f:
        json.dump(rows, f, indent=1)
    pd.concat(tables, ignore_index=True).to_parquet(out_curves, index=False)
    pd.concat(samples, ignore_index=True).to_parquet(out_samples, index=False)
