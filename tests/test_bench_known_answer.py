"""bench/known_answer.py's table and its `--check` findings on a summary written by hand:
a method whose projector score is above zero and its held-out control, with quiet controls,
holds; one whose score is not, or whose control strays, is named; the supervised baseline
and the backbone rows are not held to them, except a method without a projector's (MAE)."""

import pandas as pd
import pytest

from conftest import bench_script

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def known_answer():
    return bench_script("known_answer")


def summary_rows(method, embedding, score, low, heldout, untrained=0.0):
    base = {"method": method, "embedding": embedding, "memorized": 0.1,
            "misrepresented": 0.05, "probe_test_acc": 0.9, "knn_test_acc": 0.9}
    return [{**base, "control": "none", "epoch": 400, "score": score, "score_ci_low": low,
             "score_ci_high": score + 0.1},
            {**base, "control": "heldout", "epoch": 400, "score": heldout,
             "score_ci_low": heldout - 0.1, "score_ci_high": heldout + 0.1},
            {**base, "control": "untrained", "epoch": 0, "score": untrained,
             "score_ci_low": untrained - 0.1, "score_ci_high": untrained + 0.1}]


def test_findings_name_each_method_that_breaks_them(known_answer):
    summary = pd.DataFrame(
        summary_rows("simclr", "projector", 0.165, 0.095, 0.08)
        + summary_rows("simclr", "backbone", 0.005, -0.065, -0.3)      # not held to them
        + summary_rows("byol", "projector", 0.04, -0.04, 0.06)         # below held-out
        + summary_rows("barlow_twins", "projector", 0.04, -0.04, -0.015)  # its interval
                                                                        # reaches 0: reported
        + summary_rows("dino", "projector", 0.12, 0.05, 0.0, untrained=-0.15)
        + summary_rows("supervised", "projector", 0.5, -0.2, 0.5)      # its own overlay's
        + summary_rows("mae", "backbone", -0.01, -0.08, 0.0))          # no projector: read
    rows = known_answer.table(summary)                                  # at its backbone
    assert len(rows) == 7 and set(rows.columns) >= {"score", "ci", "heldout", "untrained"}
    assert known_answer.findings(rows) == [
        "byol: projector score +0.040 not above zero and its held-out control (+0.060)",
        "dino: untrained control -0.150 beyond ±0.1",
        "mae: backbone score -0.010 not above zero and its held-out control (+0.000)"]
    ok = summary[summary["method"] == "simclr"]
    assert known_answer.findings(known_answer.table(ok)) == []


def quality(top1=0.15, rank=0.15, read=0.45, images=12, target=0.8, reference=0.6) -> dict:
    own = {"top1_retrieval": top1, "mean_rank": rank, "class_recovery": read}
    return {"self": {"A": own, "B": dict(own)},
            "attack": {"memorized": {"images": images, "target": target,
                                     "reference": reference}}}


def test_rcdm_findings_name_what_breaks_the_decoders_known_answer(known_answer):
    assert known_answer.rcdm_findings(quality()) == []
    broken = quality(reference=0.75)
    broken["self"]["B"] = {"top1_retrieval": 0.01, "mean_rank": 0.4, "class_recovery": 0.2}
    assert known_answer.rcdm_findings(broken) == [
        "decoder B: self top-1 retrieval 0.010 below 0.05",
        "decoder B: self mean rank 0.400 above 0.3",
        "decoder B: class read 0.200 below 0.3",
        "memorized crops: 12 images, target - reference decoder +0.050 (at least 8 and 0.08)"]
    assert len(known_answer.rcdm_findings(quality(images=7))) == 1


def test_a_run_with_variants_gets_a_row_per_variant(known_answer):
    rows = pd.DataFrame([{**r, "variant": v} for v in ("default", "linear_head")
                         for r in summary_rows("supervised", "projector", 0.4, 0.3, 0.0)])
    table = known_answer.table(rows)
    assert table[["variant", "embedding"]].values.tolist() == [
        ["default", "projector"], ["linear_head", "projector"]]
