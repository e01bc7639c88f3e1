"""The report's explanatory paragraphs: what was run, and what each section's numbers are
(definitions in docs/definitions.md)."""

import pandas as pd

Section = tuple[str, str]

FRONTIER_INTRO = (
    "<p>Each point is one evaluated run (method, variant, epoch, size, seed): its déjà vu "
    "score at p with the bootstrap interval, against the accuracy of a linear probe and of "
    "k-NN on the public test split, one row of panels per embedding attacked (the accuracy "
    "is the model's, the score the embedding's). A run is Pareto-optimal (ringed) when no "
    "other run at that embedding has both higher accuracy and a lower score: the choices "
    "worth considering when trading memorization against utility.</p>")


def score_intro(p: float) -> str:
    return (f"<p>Déjà vu score = acc_target − acc_reference on each model's top {p:.0%} most "
            "confident crops, swap-averaged over (A attacked, target A) and (B attacked, target "
            "B), with a bootstrap 95% interval. Controls: <b>heldout</b> attacks images neither "
            "model saw; <b>untrained</b> uses the randomly initialised models. Both should read "
            "about zero; a real score is clearly above them, with memorized &gt; "
            "misrepresented.</p>")


def onemodel_intro(p: float) -> str:
    return (f"<p>A correlation classifier g predicts the class from the background crop "
            f"alone, trained on the other training set's crops; one-model score = "
            f"acc_KNN_target − acc_g on each one's top {p:.0%} most confident crops (own "
            f"confidence), swap-averaged where the workflow trained the pair, with a "
            f"bootstrap 95% interval. <i>memorized_one_model</i>: target right, g wrong; "
            f"<i>memorized_two_model</i>: target right, reference wrong; overlap = both / "
            f"either. The held-out control attacks images neither the target nor g saw.</p>")


SSLMEM_INTRO = (
    "<p>m(x) = d_reference(x) − d_target(x), d = mean distance between the L2-normalised "
    "embedding of an attacked image and of augmented views of it (definitions §6). Positive "
    "on training images: the target is more invariant on what it saw. AUC = chance that a "
    "training image's m exceeds a held-out one's (0.5: no signal). By partition: mean m of "
    "the training images the two-model test calls memorized, misrepresented, correlated, "
    "unassociated; corr = point-biserial correlation of m with being memorized.</p>")

RCDM_INTRO = (
    "<p>Each SSL model gets a diffusion decoder trained on the public set. <b>Self</b>: public "
    "test images decoded from their own embedding; top-1 retrieval = share of samples whose "
    "embedding is nearest their own conditioning embedding (chance 1/n); mean rank as a "
    "fraction of n-1 (chance 0.5); class = the model's k-NN on the public set reads the true "
    "class from the sample (originals: from the original at the decoder's resolution). "
    "<b>Attack</b>: for the target's most confident crops, the mean embedding of the crop's "
    "k nearest public images is decoded with the target's decoder and with the reference's; "
    "the share of samples whose class both models' k-NN read as the true one. Memorized "
    "crops should show the object with the target decoder only; correlated ones with "
    "both.</p>")


def what_was_run(summary: pd.DataFrame, vlm: pd.DataFrame, config: dict) -> list[Section]:
    """The models, data and main settings of the run, in a few lines."""
    def values(column: str, table: pd.DataFrame = summary) -> str:
        found = sorted(table[column].dropna().unique().tolist(), key=str) \
            if column in table else []
        return ", ".join(map(str, found)) or "none"

    lines = [
        f"Dataset: <b>{values('dataset')}</b>; training images per class: "
        f"{values('train_size')}; seeds: {values('seed')}.",
        f"Models: methods {values('method')}; backbones {values('backbone')}; variants "
        f"{values('variant')}; epochs tested {values('epoch')} (0: the untrained control).",
        f"Attack: embeddings {values('embedding')}; k = {values('k')}; crop modes "
        f"{values('crop_mode')}; p = {values('p')} (the share of most confident crops).",
    ]
    if not vlm.empty:
        lines.append(f"Vision–language: models {values('model', vlm)}; variants "
                     f"{values('variant', vlm)}; searches {values('search', vlm)}; k = "
                     f"{values('k', vlm)}.")
    lines.append("Every number: <code>summary.csv</code> beside this page (definitions in "
                 "docs/definitions.md); the figures as PNG and SVG in <code>figures/</code>.")
    return [("Models, data and settings", "<ul>" + "".join(f"<li>{line}</li>"
                                                         for line in lines) + "</ul>")]
