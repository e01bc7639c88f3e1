"""The report's verdict (dejavu/report/verdict.py): its rule, rounding and sentences
against hand-computed answers."""

import pandas as pd
import pytest

pytestmark = pytest.mark.unit


def verdict_rows() -> pd.DataFrame:
    """A summary of one model pair (seed 0): epochs 0 and 2, two embeddings, each control."""
    rows = []
    for embedding, real, held in (("projector", (0.20, 0.12, 0.28), (0.01, -0.05, 0.06)),
                                  ("backbone", (0.02, -0.03, 0.07), (0.00, -0.04, 0.04))):
        for epoch, control, (score, low, high) in ((2, "none", real), (2, "heldout", held),
                                                   (0, "untrained", (0.03, -0.02, 0.08))):
            rows.append({"method": "vicreg", "backbone": "convnet", "variant": "default",
                         "train_size": 8, "seed": 0, "epoch": epoch, "embedding": embedding,
                         "k": 5, "crop_mode": "periphery", "control": control,
                         "score": score, "score_ci_low": low, "score_ci_high": high})
    return pd.DataFrame(rows)


def test_the_verdict_reads_the_interval_against_the_controls_by_its_stated_rule():
    from dejavu.report import verdict
    assert verdict.rounded(-0.14, -0.36, 0.2) == "-0.14 [-0.36, +0.20]"   # width 0.56
    assert verdict.rounded(0.0213, 0.0112, 0.0311) == "+0.021 [+0.011, +0.031]"
    assert verdict.rounded(1.26, -2.0, 3.0) == "+1.3 [-2.0, +3.0]"
    assert verdict.reading(0.05, [0.0, -0.02, float("nan")]) == verdict.MEMORIZES
    assert verdict.reading(0.05, [0.06]) == verdict.NOT_ABOVE
    assert verdict.reading(0.0, []) == verdict.NOTHING
    (found,) = verdict.image_verdicts(verdict_rows())
    assert found["what"] == ("vicreg convnet, 8 per class, seed 0, epoch 2 — projector, k=5, "
                             "periphery crops")
    assert found["number"] == "+0.20 [+0.12, +0.28]"
    assert found["controls"] == "held-out +0.01, untrained +0.03"
    assert found["memorizes"] and found["flagged"] == []
    rows = verdict_rows()
    rows.loc[(rows["control"] == "heldout") & (rows["embedding"] == "projector"),
             ["score", "score_ci_low"]] = (0.15, 0.13)
    (found,) = verdict.image_verdicts(rows)  # the held-out control reads what the score does
    assert found["reading"] == verdict.NOT_ABOVE and found["flagged"] == ["held-out"]
    page = verdict.verdict_html([("Two-model test", [found])])
    assert "<b>0 of 1</b> tests below read <i>memorizes</i>" in page and "Check the split" in page


def test_the_vlm_verdict_takes_the_widest_prediction_at_the_largest_k_per_test():
    from dejavu.report import verdict
    rows = []
    for test in ("vlm", "vlm_onemodel"):
        for control, epoch, gap in (("none", 2, 0.3), ("heldout", 2, 0.0),
                                    ("untrained", 0, 0.01)):
            for k, mode in ((10, "all"), (100, "top1"), (100, "all")):
                rows.append({"test": test, "model": "clip", "variant": "default", "seed": 0,
                             "epoch": epoch, "control": control, "search": "t2i", "k": k,
                             "mode": mode, "recall_gap": gap + k / 1000,
                             "recall_gap_ci_low": gap + k / 1000 - 0.05,
                             "recall_gap_ci_high": gap + k / 1000 + 0.05})
    found = verdict.vlm_verdicts(pd.DataFrame(rows))
    assert [v["what"] for v in found] == [
        "VLM clip (two-model), seed 0, epoch 2 — t2i, k=100, all objects",
        "VLM clip (one-model, against the reference text model), seed 0, epoch 2 — t2i, "
        "k=100, all objects"]
    assert found[0]["number"] == "+0.40 [+0.35, +0.45]" and found[0]["memorizes"]
    assert found[0]["controls"] == "held-out +0.10, untrained +0.11"


def test_a_tables_numbers_with_intervals_are_rounded_to_what_the_interval_supports():
    from dejavu.report.html_page import by_interval, table_html
    table = pd.DataFrame({"method": ["a", "b"], "score": [0.2034, 0.02134],
                          "score_ci_low": [0.1211, 0.01123], "score_ci_high": [0.2789, 0.0311],
                          "acc": [0.51234, float("nan")]})
    shown = by_interval(table)
    assert shown["score"].tolist() == ["0.20", "0.021"]
    assert shown["score_ci_low"].tolist() == ["0.12", "0.011"]
    assert shown["acc"].iloc[0] == 0.51234  # no interval: the table's float format
    page = table_html(table)
    assert page.startswith("<div class='scroll'>") and "0.512" in page and "0.028" not in page
    # an interval not computed, a value that is not a number: shown as they are
    odd = by_interval(pd.DataFrame({"score": [0.5, None, "n/a"], "score_ci_low": [None, 0.1, 0.1],
                                    "score_ci_high": [None, 0.2, 0.3]}))
    assert odd["score"].tolist() == ["0.500", "", "n/a"]
