"""The report's verdict: one sentence per evaluated model, generated from the summary's
numbers by the rule in docs/report.md ("Reading the verdict").

For a model's score s with its bootstrap 95% interval [lo, hi] and its controls (the
held-out images and the untrained models, scored the same way):

- *memorizes* when lo > 0 and lo is above every control's score: the interval excludes
  zero and the controls' readings;
- *above zero, not above its controls* when lo > 0 but a control scores at least lo: the
  score is real but so is what the controls read, so it says nothing of memorization;
- *no evidence of memorization* when lo <= 0.

A control whose own interval lies above zero is flagged: it should read zero, and one that
does not points at the split or the data (definitions §1). Numbers are rounded to what
their interval supports (`rounded`).
"""

from __future__ import annotations

import html
import math

import pandas as pd

from .mitigation import DEFAULT

MEMORIZES = "memorizes: the score's interval is above zero and above its controls"
NOT_ABOVE = "above zero, but not above its controls: no evidence of memorization beyond them"
NOTHING = "no evidence of memorization: the score's interval is not above zero"
MODEL_KEYS = ["method", "backbone", "variant", "train_size", "seed"]


def decimals(low: float, high: float) -> int:
    """Digits after the point an interval of this width supports: one more than its width's
    first significant digit, between 1 and 3."""
    try:
        width = abs(float(high) - float(low))
    except (TypeError, ValueError):  # an interval not computed
        return 3
    if not math.isfinite(width) or width == 0:
        return 3
    return min(3, max(1, 1 - math.floor(math.log10(width))))


def rounded(value: float, low: float, high: float) -> str:
    """`+0.14 [+0.02, +0.25]`: the value and its interval to the interval's precision."""
    d = decimals(low, high)
    return f"{value:+.{d}f} [{low:+.{d}f}, {high:+.{d}f}]"


def widest_mode(table: pd.DataFrame) -> str:
    """The prediction mode a VLM summary's rows hold that predicts the most objects."""
    return next(m for m in ("all", "top10", "top1") if m in set(table["mode"]))


def reading(low: float, controls: list[float]) -> str:
    """The verdict's plain reading of an interval's lower end against the controls' scores."""
    if not low > 0:
        return NOTHING
    return MEMORIZES if all(low > c for c in controls if pd.notna(c)) else NOT_ABOVE


def verdict(what: str, label: str, row, controls: dict[str, pd.Series | None],
            column: str = "score") -> dict:
    """One model's verdict: `what` (the model), `label` (the number's name), its value with
    the interval, each control's value, the reading, and the flagged controls."""
    low, high = row[f"{column}_ci_low"], row[f"{column}_ci_high"]
    d = decimals(low, high)
    shown = {name: c for name, c in controls.items() if c is not None}
    flagged = [name for name, c in shown.items() if c[f"{column}_ci_low"] > 0]
    text = reading(low, [c[column] for c in shown.values()])
    return {"what": what, "label": label, "number": rounded(row[column], low, high),
            "controls": ", ".join(f"{name} {c[column]:+.{d}f}" for name, c in shown.items())
            or "no control ran", "reading": text, "flagged": flagged,
            "memorizes": text == MEMORIZES}


def _match(table: pd.DataFrame, row, keys: list[str], **fixed) -> pd.Series | None:
    """The row of `table` agreeing with `row` on `keys` and with `fixed`; None if absent."""
    mask = pd.Series(True, index=table.index)
    for key in keys:
        mask &= table[key] == row[key]
    for key, value in fixed.items():
        mask &= table[key] == value
    found = table[mask]
    return None if found.empty else found.iloc[0]


def image_verdicts(summary: pd.DataFrame, column: str = "score",
                   label: str = "déjà vu score") -> list[dict]:
    """Each trained model pair at its last epoch, from the projector where it was attacked
    (else the first embedding), at the first k and crop mode: `column` against its
    held-out and untrained controls."""
    rows = summary.dropna(subset=[column])
    real = rows[rows["control"] == "none"]
    if real.empty:
        return []
    out = []
    for _, model in real.groupby(MODEL_KEYS, sort=False):
        last = model[model["epoch"] == model["epoch"].max()]
        embeddings = list(last["embedding"])
        row = last[last["embedding"] == ("projector" if "projector" in embeddings
                                         else embeddings[0])].iloc[0]
        same = [*MODEL_KEYS, "embedding", "k", "crop_mode"]
        controls = {"held-out": _match(rows, row, same, control="heldout", epoch=row["epoch"]),
                    "untrained": _match(rows, row, same, control="untrained")}
        what = (f"{row['method']} {row['backbone']}"
                + ("" if row["variant"] == DEFAULT else f" ({row['variant']})")
                + f", {row['train_size']} per class, seed {row['seed']}, epoch {row['epoch']}"
                + f" — {row['embedding']}, k={row['k']}, {row['crop_mode']} crops")
        out.append(verdict(what, label, row, controls, column))
    return out


def vlm_verdicts(table: pd.DataFrame) -> list[dict]:
    """Each VLM (the default variant, or the one trained elsewhere) at its last epoch and
    each seed: the recall gap of the widest prediction at the largest k, text-to-image
    where it ran, against its held-out and untrained controls; per test (two-model, and
    one-model against the reference text model)."""
    if table.empty:
        return []
    if table["variant"].notna().any():
        table = table[table["variant"].fillna(DEFAULT) == DEFAULT]
    search = "t2i" if "t2i" in set(table["search"]) else table["search"].iloc[0]
    mode = widest_mode(table)
    table = table[(table["search"] == search) & (table["mode"] == mode)
                  & (table["k"] == table["k"].max())]
    out = []
    for (test, seed), rows in table.groupby(["test", table["seed"].fillna(-1)], sort=False):
        last = rows[rows["control"] != "untrained"]
        last = last[last["epoch"].fillna(0) == last["epoch"].fillna(0).max()]
        real = last[last["control"] == "none"]
        if real.empty:
            continue
        row = real.iloc[0]
        controls = {"held-out": _first(last[last["control"] == "heldout"]),
                    "untrained": _first(rows[rows["control"] == "untrained"])}
        name = "one-model, against the reference text model" if test == "vlm_onemodel" \
            else "two-model"
        what = (f"VLM {row['model']} ({name})" + ("" if seed < 0 else f", seed {int(seed)}")
                + ("" if pd.isna(row["epoch"]) else f", epoch {int(row['epoch'])}")
                + f" — {search}, k={int(row['k'])}, {mode} objects")
        out.append(verdict(what, "population recall gap", row, controls, "recall_gap"))
    return out


def _first(rows: pd.DataFrame) -> pd.Series | None:
    return None if rows.empty else rows.iloc[0]


def verdict_html(groups: list[tuple[str, list[dict]]]) -> str:
    """The verdict section: a headline count, then per test one line per model."""
    every = [v for _, verdicts in groups for v in verdicts]
    if not every:
        return "<p>No model was tested: the summary has no score.</p>"
    yes = sum(v["memorizes"] for v in every)
    body = (f"<p class='headline'><b>{yes} of {len(every)}</b> tests below read "
            f"<i>memorizes</i> by the rule at the end; each line gives a model's number, its "
            f"bootstrap 95% interval and its controls (which should read zero).</p>")
    for title, verdicts in groups:
        if not verdicts:
            continue
        items = "".join(
            f"<li class='{'yes' if v['memorizes'] else 'no'}'><b>{html.escape(v['what'])}</b>:"
            f" {v['label']} {v['number']} (controls: {v['controls']}) — "
            f"<b>{v['reading']}</b>."
            + (f" <i>Check the split: the {', '.join(v['flagged'])} control reads above "
               f"zero.</i>" if v["flagged"] else "") + "</li>"
            for v in verdicts)
        body += f"<h3>{html.escape(title)}</h3><ul class='verdict'>{items}</ul>"
    return body + ("<p class='note'>Memorizes: the interval's lower end is above zero and "
                   "above every control's score; above zero but not above a control: no "
                   "evidence beyond what the controls read; otherwise: no evidence "
                   "(docs/report.md).</p>")
