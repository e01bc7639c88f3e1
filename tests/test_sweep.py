"""The paper's findings on the demo (`config.yaml`), with epoch 100 evaluated too.

This runs the real workflow (about ten minutes on 2 cores): the demo recipe, 50 images per
class, both embeddings, every control, the one-model test and SSLMem, at epochs 100 and 400
of one training run (the epoch-100 rows come from a saved training state; nothing is
retrained), with a smaller correlation classifier than the demo's and no RCDM decoders
(tests/known_answer.yaml: their known answer at this scale is `python bench/known_answer.py
--seed 0 --check`). The margins were chosen from runs over data/model seeds 0, 1, 2
(docs/configuration.md): each holds in every one of them, and the noise of a swap-averaged
score at this size is about 0.05. The shipped sweep example (`config/sweep.yaml`: epochs
100, 200, 400 and sizes 25 and 50) computes these very rows plus more: the last test checks
that it extends this run without retraining its models, and the figures a size sweep adds
are drawn by tests/test_report.py.
"""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import HEAD_STARTS, copy_workflow, head_start, planned_jobs, snakemake

# the demo's training with epoch 100 kept; a ResNet-10 correlation classifier
KNOWN_ANSWER = Path(__file__).with_name("known_answer.yaml")

# Measured over data/model seeds 0, 1, 2 at 50 images per class, epoch 400, issue-3 code
# (docs/benchmarks.md; seed 0 with the current code: 0.255, held-out -0.045):
# score 0.230 / 0.215 / 0.205; held-out -0.030 / +0.015 / -0.030; untrained -0.005 /
# -0.020 / +0.015; memorized - misrepresented 0.102 / 0.114 / 0.102; misrepresented 0.038 /
# 0.031 / 0.034; score at 400 minus at 100 epochs 0.085 / 0.190 / 0.200; projector minus
# backbone 0.190 / 0.225 / 0.120. Each margin sits about one standard error (0.05) inside
# the worst seed, or further. The 400-epoch rows are the demo config's own (same split,
# same training: the epoch sweep only saves more), so this is also the demo's known answer.
MIN_SCORE = 0.08             # projector score at p = 0.2, epoch 400
MIN_GAP_OVER_HELDOUT = 0.08  # real score minus the held-out control's
MAX_CONTROL = 0.10           # |score| of the held-out and untrained controls
MIN_PARTITION_GAP = 0.04     # memorized minus misrepresented (over all attacked images)
MAX_MISREPRESENTED = 0.08    # misrepresented share stays small
MIN_EPOCH_GROWTH = 0.04      # projector score at 400 minus at 100 epochs
MIN_PROJECTOR_OVER_BACKBONE = 0.05  # VICReg: projector score minus backbone score


@pytest.fixture
def sweep():
    return HEAD_STARTS["sweep"].result()


@head_start("sweep")
def run_the_demo(tmp_path_factory):
    """The demo and its epoch-100 checkpoint, from the session's start, niced, while the
    other tiers' tests run (tests/conftest.py, HeadStart)."""
    work = copy_workflow(tmp_path_factory.mktemp("sweep") / "dejavu")
    shutil.copy(KNOWN_ANSWER, work / "known_answer.yaml")
    # niced: unniced with a third job slot, it slowed every tier and the SLURM runs
    # (measured: the whole suite longer, not shorter)
    snakemake(work, "-c2", "--configfile", "known_answer.yaml", background=True)
    summary = pd.read_csv(work / "results" / "summary.csv")
    return work, summary[summary["train_size"] == 50]


def rows(summary, embedding="projector", epoch=400):
    chosen = summary[(summary["embedding"] == embedding) & (summary["epoch"].isin([0, epoch]))]
    return chosen.set_index("control")


@pytest.mark.slow
def test_projector_score_is_clearly_positive(sweep):
    at = rows(sweep[1])
    assert at.loc["none", "score"] >= MIN_SCORE, at
    assert at.loc["none", "score"] - at.loc["heldout", "score"] >= MIN_GAP_OVER_HELDOUT


@pytest.mark.slow
def test_memorized_exceeds_misrepresented_which_stays_small(sweep):
    real = rows(sweep[1]).loc["none"]
    assert real["memorized"] - real["misrepresented"] >= MIN_PARTITION_GAP, real
    assert real["misrepresented"] <= MAX_MISREPRESENTED, real


@pytest.mark.slow
@pytest.mark.parametrize("control", ["heldout", "untrained"])
def test_controls_score_about_zero(sweep, control):
    at = rows(sweep[1])
    assert abs(at.loc[control, "score"]) <= MAX_CONTROL, at.loc[control]


@pytest.mark.slow
def test_score_grows_with_epochs(sweep):
    real = sweep[1][(sweep[1]["embedding"] == "projector") & (sweep[1]["control"] == "none")]
    score = real.set_index("epoch")["score"]
    assert score[400] - score[100] >= MIN_EPOCH_GROWTH, score


@pytest.mark.slow
def test_vicreg_backbone_scores_below_projector(sweep):
    real = sweep[1][(sweep[1]["control"] == "none") & (sweep[1]["epoch"] == 400)]
    score = real.set_index("embedding")["score"]
    assert score["projector"] - score["backbone"] >= MIN_PROJECTOR_OVER_BACKBONE, score


@pytest.mark.slow
def test_report_shows_every_sweep_figure(sweep):
    work, _ = sweep
    figures = work / "results" / "figures"
    for name in ("score_vs_epochs", "shares_vs_epochs", "examples", "partition"):
        assert (figures / f"{name}.png").exists() and (figures / f"{name}.svg").exists()
    assert not (figures / "score_vs_size.png").exists()  # one size: a note instead
    assert len(list(figures.glob("curves_*.png"))) == 2  # one per embedding
    assert (figures / "method_comparison.csv").exists()


@pytest.mark.slow
def test_the_shipped_sweep_extends_this_run_without_retraining_it(sweep):
    """config/sweep.yaml adds epoch 200 and the 25-per-class pair: only the new pair trains;
    the 50-per-class epoch-200 checkpoints continue from saved training states."""
    jobs = planned_jobs(sweep[0], "--configfile", "known_answer.yaml", "config/sweep.yaml")
    assert jobs["train"] == 2 and jobs["init"] == 2, jobs   # models A and B at size 25
    assert jobs["snapshot"] == 2 + 2 * 3, jobs   # size 50 epoch 200; size 25 all epochs
    assert "synth" not in jobs, jobs


# The one-model test and SSLMem on the demo's models (50 per class, epoch 400), measured on
# data/model seeds 0, 1, 2 (docs/stages.md, "The one-model test and SSLMem"; the ResNet-10
# rows with `bench/known_answer.py --overlay tests/known_answer.yaml`, docs/benchmarks.md):
# one-model score with the ResNet-10 classifier, projector, 0.290 / 0.275 / 0.160 (ResNet-18:
# 0.320 / 0.295 / 0.185), its held-out control 0.060 / 0.100 / -0.060; classifier accuracy
# on all attacked crops minus the reference k-NN's 0.010 / 0.004 / 0.042 (ResNet-18: -0.004
# / -0.003 / 0.005); SSLMem (backbone) mean m on training minus held-out images 0.0092 /
# 0.0080 / 0.0083, AUC 0.566 / 0.551 / 0.566 (its standard error at 1000 + 1000 images is
# about 0.013).
MIN_ONEMODEL_SCORE = 0.10          # one-model score, positive like the two-model score
MIN_ONEMODEL_OVER_HELDOUT = 0.06   # one-model score minus its held-out control's
MAX_CLASSIFIER_VS_REFERENCE = 0.06  # |classifier accuracy - reference k-NN accuracy|
MIN_SSLMEM_GAP = 0.004             # mean m of training minus held-out images
MIN_SSLMEM_AUC = 0.53              # m tells training from held-out images


@pytest.mark.slow
def test_one_model_score_is_positive_like_the_two_model_score(sweep):
    at = rows(sweep[1])
    assert at.loc["none", "onemodel_classifier"] == "resnet"
    assert at.loc["none", "onemodel_score"] >= MIN_ONEMODEL_SCORE, at.loc["none"]
    assert at.loc["none", "score"] > 0  # the same sign
    assert (at.loc["none", "onemodel_score"] - at.loc["heldout", "onemodel_score"]
            >= MIN_ONEMODEL_OVER_HELDOUT), at[["onemodel_score"]]


@pytest.mark.slow
def test_correlation_classifier_reads_crops_as_well_as_the_reference_knn(sweep):
    real = rows(sweep[1]).loc["none"]
    assert abs(real["acc_classifier_all"] - real["acc_reference_all"]) <= \
        MAX_CLASSIFIER_VS_REFERENCE, real[["acc_classifier_all", "acc_reference_all"]]


@pytest.mark.slow
def test_sslmem_is_higher_on_training_images_than_on_held_out_ones(sweep):
    real = rows(sweep[1]).loc["none"]
    assert real["sslmem_train"] - real["sslmem_heldout"] >= MIN_SSLMEM_GAP, real
    assert real["sslmem_auc"] >= MIN_SSLMEM_AUC, real
    figures = sweep[0] / "results" / "figures"
    assert (figures / "sslmem_vicreg_convnet_n50_s0.png").exists()
    assert (figures / "memorization_vicreg_convnet_n50_s0.png").exists()
