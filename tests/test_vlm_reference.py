"""The one-model VLM test's reference text model (dejavu/vlm/reference.py: TF-IDF over
hashed words, its IDF from the public captions alone) and the agreement of the one- and
two-model tests (dejavu/vlm/scoring.py), on hand-sized cases."""

import numpy as np
import pytest

from dejavu.vlm import reference, scoring

pytestmark = pytest.mark.unit


def test_tfidf_weights_rare_public_words_and_normalises():
    public = ["a red cup", "a red kite", "a blue cup"]
    idf = reference.fit_idf([public[:2], public[2:]], dim=4096)  # batches add up
    assert np.allclose(idf, reference.fit_idf([public], dim=4096))
    x = reference.tfidf(["a red cup", "a red cup", "kite", "", "unseen words"], idf)
    assert np.allclose(np.linalg.norm(x[[0, 2, 4]], axis=1), 1) and not x[3].any()
    assert x[0] @ x[1] == pytest.approx(1)
    bucket = lambda word: reference.counts([word], 4096).argmax()  # noqa: E731
    # "a" is in every public caption, "kite" in one: log(4/4) + 1 = 1 and log(4/2) + 1
    assert idf[bucket("a")] == pytest.approx(1) and idf[bucket("kite")] == pytest.approx(
        np.log(2) + 1)
    assert idf[bucket("unseen")] == pytest.approx(np.log(4) + 1)  # df 0


def test_agreement_counts_which_test_finds_each_record_memorized():
    key = (10, "top10")
    score = lambda recall: {key: (None, np.array(recall, float), None)}  # noqa: E731
    target, model_b, g = score([0.5, 0.5, 0.2, 0.1]), score([0.2, 0.5, 0.2, 0.3]), \
        score([0.1, 0.2, 0.5, np.nan])
    # record 0: both; 1: one-model only; 2: neither; 3: neither (no recall by g)
    assert scoring.agreement([(target, model_b)], [g], key) == [[1, 0], [1, 2]]
