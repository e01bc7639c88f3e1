"""bench/sweeps.py on summaries written by hand: each sweep's points placed at their swept
value (the default run at its own), and each finding broken by the rows that break it."""

import pandas as pd
import pytest

from conftest import bench_script

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def bench():
    return bench_script("sweeps")


def summary(scores: dict[str, float], heldout: float = 0.0, size: int = 50,
            method: str = "vicreg") -> pd.DataFrame:
    """One seed's last-epoch rows: each variant's projector score and its control."""
    rows = []
    for variant, score in scores.items():
        for control, value in (("none", score), ("heldout", heldout)):
            rows.append({"method": method, "variant": variant, "embedding": "projector",
                         "control": control, "epoch": 400, "train_size": size, "p": 0.2,
                         "score": value, "probe_test_acc": 0.9})
    return pd.DataFrame(rows)


RISING = {"sim_coeff_5": 0.10, "sim_coeff_10": 0.15, "default": 0.2, "sim_coeff_50": 0.3}


def test_each_point_is_placed_at_its_value_the_default_run_at_its_own(bench):
    rows = bench.points(summary(RISING), "vicreg_invariance")
    placed = rows[rows["control"] == "none"].set_index("variant")["x"].to_dict()
    assert placed == {"sim_coeff_5": 5, "sim_coeff_10": 10, "default": 25.0, "sim_coeff_50": 50}
    sizes = pd.concat([summary({"default": s}, size=n) for n, s in ((25, 0.2), (100, 0.22))])
    assert sorted(bench.points(sizes, "sizes")["x"].unique()) == [25, 100]


@pytest.mark.parametrize("sweep, scores, heldout, broken", [
    ("vicreg_invariance", RISING, 0.0, []),
    ("vicreg_invariance", {**RISING, "sim_coeff_50": 0.11}, 0.0, ["not a rise"]),
    ("vicreg_invariance", RISING, 0.15, ["held-out control +0.150"] * 4),
    ("simclr_temperature", {"temperature_0p05": 0.2, "default": 0.21, "temperature_0p5": 0.22},
     0.0, ["span 0.020 over the temperatures"]),
    ("model_size", {"default": 0.2}, 0.0, ["1 swept value(s)"]),  # a run that lacks them
])
def test_a_finding_is_broken_by_the_rows_that_break_it(bench, sweep, scores, heldout, broken):
    method = "simclr" if sweep == "simclr_temperature" else "vicreg"
    found = bench.findings(sweep, bench.points(summary(scores, heldout, method=method), sweep))
    assert len(found) == len(broken)
    for sentence, part in zip(found, broken):
        assert part in sentence


def test_sizes_must_stay_roughly_constant(bench):
    flat = pd.concat([summary({"default": s}, size=n) for n, s in ((25, 0.2), (50, 0.22),
                                                                   (100, 0.25))])
    assert bench.findings("sizes", bench.points(flat, "sizes")) == []
    falling = pd.concat([summary({"default": s}, size=n) for n, s in ((25, 0.35), (100, 0.2))])
    assert "not roughly constant" in bench.findings("sizes", bench.points(falling, "sizes"))[0]
