"""The vision-language test on embeddings (dejavu/vlm/attack.py): neighbours by cosine, the
objects they predict, the gaps of one direction and of both, the bootstrap; a model that
recalls its records' images against one that does not, and two equal models."""

import numpy as np
import pytest

from dejavu.vlm import attack, objects

pytestmark = pytest.mark.unit


def test_a_hand_sized_direction():
    public = objects.multi_hot([[0], [1], [0, 1]], 3)
    true = objects.multi_hot([[0], [1]], 3)
    found_t = np.array([[0, 2], [1, 2]])   # the target's neighbours hold the true objects
    found_r = np.array([[1, 2], [0, 1]])   # the reference's nearest do not
    out = attack.direction(found_t, found_r, public, true, ks=[1, 2], modes=["top1", "all"])
    one = out[1, "top1"]
    assert one["precision_gap"] == 1.0 and one["recall_gap"] == 1.0
    assert one["recall_ccdf_area_gap"] == 1.0
    # k = 2, all: target predicts {0, 1} for both (precision 1/2, recall 1); the reference
    # predicts {0, 1} for record 0 (1/2, 1) and {0, 1} for record 1 (1/2, 1): equal
    two = out[2, "all"]
    assert two["precision_gap"] == 0.0 and two["recall_gap"] == 0.0
    both = attack.averaged(out, attack.direction(found_r, found_t, public, true, [1, 2],
                                                ["top1", "all"]))
    assert both[1, "top1"]["recall_gap"] == 0.0  # the directions cancel here


def embeddings(object_sets, vocabulary, rng, noise=0.05):
    base = objects.multi_hot(object_sets, vocabulary).astype(np.float32)
    return base + noise * rng.standard_normal(base.shape).astype(np.float32)


def test_a_model_recalling_its_records_images_shows_gaps_and_equal_models_none():
    rng = np.random.default_rng(0)
    vocabulary = 12
    draw = lambda n: [list(rng.choice(vocabulary, 3, replace=False)) for _ in range(n)]  # noqa: E731
    public_sets, record_sets = draw(400), draw(60)
    public = embeddings(public_sets, vocabulary, rng)
    public_objects = objects.multi_hot(public_sets, vocabulary)
    true = objects.multi_hot(record_sets, vocabulary)
    recalled = embeddings(record_sets, vocabulary, rng)       # the target's caption queries
    unaware = rng.standard_normal(recalled.shape).astype(np.float32)  # the reference's
    found_t = attack.neighbours(recalled, public, 10)
    found_r = attack.neighbours(unaware, public, 10)
    # the search is exact cosine: the first neighbour is the most similar public row
    cos = (recalled / np.linalg.norm(recalled, axis=1, keepdims=True)) @ \
        (public / np.linalg.norm(public, axis=1, keepdims=True)).T
    assert (found_t[:, 0] == cos.argmax(axis=1)).all()
    out = attack.direction(found_t, found_r, public_objects, true, [1, 10], ["top1", "top10"])
    assert out[10, "top10"]["recall_gap"] > 0.5 and out[1, "top1"]["precision_gap"] > 0.5
    assert out[10, "top10"]["top0.1_recall_gap"] > 0.3
    same = attack.direction(found_t, found_t, public_objects, true, [1, 10], ["top1"])
    assert all(v == 0.0 for gaps in same.values() for v in gaps.values())
    scores = [attack.per_record(found, public_objects, true, [10], ["top10"])[10, "top10"]
              for found in (found_t, found_r)]
    boot = attack.bootstrap(*scores, 200, seed=1)
    low, high = np.quantile(boot["recall_gap"], [0.025, 0.975])
    assert 0 < low <= out[10, "top10"]["recall_gap"] <= high
    again = attack.bootstrap(*scores, 200, seed=1)
    assert np.array_equal(boot["recall_gap"], again["recall_gap"])


def test_the_report_draws_the_gaps_and_copies_the_table(tmp_path):
    import pandas as pd

    from dejavu.report.vlm_figures import vlm_sections
    rows = [{"test": "vlm", "seed": 0, "epoch": 2, "control": control, "search": search,
             "k": k, "mode": "top10", "precision_gap": value, "precision_gap_ci_low": value - .1,
             "precision_gap_ci_high": value + .1, "recall_gap": value,
             "recall_gap_ci_low": value - .1, "recall_gap_ci_high": value + .1}
            for control, value in (("none", 0.2), ("heldout", 0.0), ("untrained", 0.01))
            for search in ("t2i", "t2t") for k in (1, 10)]
    pd.DataFrame(rows).to_csv(tmp_path / "vlm_summary.csv", index=False)
    out = tmp_path / "figures"
    out.mkdir()
    assert vlm_sections({}, out) == []
    (title, body), = vlm_sections({"vlm": str(tmp_path / "vlm_summary.csv")}, out)
    assert "Vision–language" in title and body.count("<img") == 2
    for name in ("vlm_precision_gap.png", "vlm_recall_gap.png", "vlm_summary.csv"):
        assert (out / name).stat().st_size > 0
