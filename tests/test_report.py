"""The report's tables and figures from small hand-made tables with known answers."""

import json

import numpy as np
import pandas as pd
import pytest

from dejavu.report import figures, layer_figures, loading, tables

pytestmark = pytest.mark.unit


def summary_rows():
    """Two seeds x two embeddings x epochs (0, 10, 20), control none; held-out at 10, 20."""
    rows = []
    for seed in (0, 1):
        for embedding, base in (("backbone", 0.05), ("projector", 0.10)):
            for epoch in (0, 10, 20):
                controls = ["untrained"] if epoch == 0 else ["none", "heldout"]
                for control in controls:
                    score = 0.0 if control != "none" else base * epoch / 10 + 0.01 * seed
                    rows.append(dict(dataset="synthetic", method="vicreg", backbone="convnet",
                                     variant="default", epoch=epoch, train_size=50, seed=seed, embedding=embedding,
                                     k=20, crop_mode="periphery", control=control, p=0.2,
                                     n_attacked=100, acc_target=0.5 + score, acc_reference=0.5,
                                     score=score, score_ci_low=score - 0.1,
                                     score_ci_high=score + 0.1, acc_target_all=0.5,
                                     acc_reference_all=0.5, memorized=0.2 + score / 2,
                                     misrepresented=0.1, correlated=0.3,
                                     unassociated=0.4 - score / 2))
    return pd.DataFrame(rows)[tables.SUMMARY_COLUMNS]  # the score table's column order


def probe_files(tmp_path):
    paths = []
    for seed in (0, 1):
        for subset, train_acc in (("A", 1.0), ("B", 0.9)):
            for epoch in (0, 10, 20):
                path = tmp_path / f"{seed}{subset}{epoch}.json"
                path.write_text(json.dumps(dict(
                    method="vicreg", backbone="convnet", variant="default", train_size=50,
                    seed=seed, subset=subset, epoch=epoch, embedding="backbone", train_acc=train_acc,
                    test_acc=0.6, gap=train_acc - 0.6, n_train=500, n_test=100)))
                paths.append(str(path))
    return paths


def test_probe_columns_are_the_mean_of_models_a_and_b(tmp_path):
    probes = tables.probe_table(loading.probe_rows(probe_files(tmp_path)))
    assert len(probes) == 6
    assert probes["probe_train_acc"].to_numpy() == pytest.approx(0.95)
    assert probes["probe_gap"].to_numpy() == pytest.approx(0.35)
    summary = tables.with_probe(summary_rows(), probes)
    assert list(summary.columns[-4:]) == tables.PROBE_COLUMNS
    assert summary["probe_gap"].to_numpy() == pytest.approx(0.35)
    empty = tables.with_probe(summary_rows(), tables.probe_table(loading.probe_rows([])))
    assert empty["probe_gap"].isna().all() and len(empty) == len(summary)


def test_embedding_table_pairs_the_same_models_scores():
    table = tables.embedding_table(summary_rows())
    assert len(table) == 2 * 2  # seeds x trained epochs
    row = table[(table["seed"] == 1) & (table["epoch"] == 20)].iloc[0]
    assert row["score_backbone"] == pytest.approx(0.11)
    assert row["score_projector"] == pytest.approx(0.21)
    assert row["projector_minus_backbone"] == pytest.approx(0.10)


def test_method_table_takes_the_last_epoch_and_averages_seeds(tmp_path):
    summary = tables.with_probe(summary_rows(), tables.probe_table(loading.probe_rows(probe_files(tmp_path))))
    table = tables.method_table(summary).set_index("embedding")
    assert set(table["epoch"]) == {20} and set(table["seeds"]) == {2}
    assert table.loc["projector", "score"] == pytest.approx(0.205)
    assert table.loc["projector", "score_sd_seeds"] == pytest.approx(np.std([0.2, 0.21],
                                                                            ddof=1))
    assert table.loc["backbone", "probe_gap"] == pytest.approx(0.35)


def test_trend_and_curve_figures_are_written_as_png_and_svg(tmp_path):
    summary = tables.with_probe(summary_rows(), tables.probe_table(loading.probe_rows(probe_files(tmp_path))))
    for along in ("epoch", "train_size"):
        for plot in (figures.plot_score_trends, figures.plot_share_trends):
            fig = plot(summary, along)
            assert fig.axes and all(ax.has_data() for ax in fig.axes[:1])
            figures.figure_png(fig, tmp_path / f"{plot.__name__}_{along}.png")
    curves = pd.DataFrame([dict(p=p, acc_target=0.8, acc_reference=0.6, acc_target_low=0.7,
                                acc_target_high=0.9, acc_reference_low=0.5,
                                acc_reference_high=0.7, score=0.2, score_low=0.1,
                                score_high=0.3, control=c, seed=0)
                           for p in (0.1, 0.5, 1.0) for c in ("none", "heldout")])
    png = figures.figure_png(figures.plot_curves(curves, "t"), tmp_path / "curves.png")
    assert len(png) > 1000
    for name in ("curves", "plot_score_trends_epoch", "plot_share_trends_train_size"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert "<svg" in (tmp_path / f"{name}.svg").read_text()


def test_the_page_draws_trends_along_each_swept_axis_only(tmp_path):
    """The summary the workflow writes for one size (the demo) and for two (the shipped
    sweep): the size figures exist only for the second; the first says how to get them."""
    from dejavu.report import page
    one_size = tables.with_probe(summary_rows(),
                                 tables.probe_table(loading.probe_rows(probe_files(tmp_path))))
    two_sizes = pd.concat([one_size, one_size.assign(train_size=25, score=one_size["score"] / 2)])
    along_epochs = {"score_vs_epochs", "shares_vs_epochs"}
    for name, summary, drawn in (("one", one_size, along_epochs),
                                 ("two", two_sizes, along_epochs | {"score_vs_size",
                                                                    "shares_vs_size"})):
        out = tmp_path / name
        out.mkdir()
        sections, notes = page.trend_sections(summary, out)
        assert {path.stem for path in out.glob("*.png")} == drawn
        assert {path.stem for path in out.glob("*.svg")} == drawn
        assert len(sections) == len(drawn)
        assert [n for n in notes if "split.npc" in n] == (
            ["Trends along train-set size (images per class): one value of train_size was "
             "tested (split.npc with several values draws them)"] if name == "one" else [])


def test_trend_along_size_uses_each_pairs_last_epoch():
    rows = tables.trend_rows(summary_rows(), "train_size")
    assert set(rows["epoch"]) == {20} and "untrained" not in set(rows["control"])


def onemodel_rows(summary):
    """One-model rows for every summary row, two classifiers, plus an external model's."""
    rows = []
    for r in summary.itertuples():
        for classifier, gap in (("resnet", 0.15), ("naive_bayes", 0.05)):
            rows.append(dict(dataset=r.dataset, method=r.method, backbone=r.backbone,
                             variant=r.variant, train_size=r.train_size, seed=r.seed, embedding=r.embedding,
                             k=r.k, crop_mode=r.crop_mode, epoch=r.epoch, control=r.control,
                             classifier=classifier, p=0.2, n_attacked=100,
                             acc_target=r.acc_target, acc_classifier=r.acc_target - gap,
                             score=gap, score_ci_low=gap - 0.1, score_ci_high=gap + 0.1,
                             acc_target_all=0.5, acc_classifier_all=0.45,
                             memorized_one_model=0.2, memorized_two_model=0.25,
                             memorized_both=0.1, memorized_overlap=0.1 / 0.35))
    rows.append(dict(rows[0], method="external", backbone="mine", seed=0, epoch=1,
                     control="none", classifier="resnet", score=0.3, acc_target=0.9))
    del rows[-1]["memorized_overlap"], rows[-1]["memorized_two_model"]
    return pd.DataFrame(rows)


def test_summary_gets_the_first_classifiers_one_model_columns_and_external_rows():
    summary = summary_rows()
    onemodel = onemodel_rows(summary)
    merged = tables.with_onemodel(summary, onemodel, "resnet")
    paired = merged[merged["method"] == "vicreg"]
    assert len(paired) == len(summary)
    assert (paired["onemodel_score"] == 0.15).all()
    assert (paired["onemodel_classifier"] == "resnet").all()
    assert np.allclose(paired["acc_classifier"], paired["acc_target"] - 0.15)
    assert paired["memorized_overlap"].round(6).eq(round(0.1 / 0.35, 6)).all()
    external = merged[merged["method"] == "external"]
    assert len(external) == 1
    row = external.iloc[0]
    assert row["onemodel_score"] == 0.3 and row["acc_target"] == 0.9
    assert np.isnan(row["score"]) and np.isnan(row["memorized_overlap"])
    assert list(merged.columns[:len(tables.SUMMARY_COLUMNS)]) == tables.SUMMARY_COLUMNS
    # no one-model test: the columns are there, empty
    empty = tables.with_onemodel(summary, pd.DataFrame(), None)
    assert empty["onemodel_score"].isna().all() and len(empty) == len(summary)


def test_sslmem_figures_join_the_real_tests_rows_of_their_pair_and_epoch():
    table = pd.DataFrame({"id": ["a", "b", "c", "d"], "set": ["A", "B", "heldout", "heldout"],
                          "label": 0, "target": ["A", "B", "A", "B"],
                          "d_target": 0.0, "d_reference": 0.0,
                          "m": [0.3, 0.1, 0.0, -0.1], "m_norm": 0.0})
    samples = pd.DataFrame({
        "id": ["a", "b"], "set": ["A", "B"], "target": ["A", "B"], "control": "none",
        "correct_target": [True, True], "correct_reference": [False, True],
        "correct_classifier": [False, False], "memorization": [0.5, 0.2],
        "dataset": "synthetic", "method": "vicreg", "backbone": "convnet", "variant": "default",
        "train_size": 50, "seed": 1, "embedding": "projector", "k": 20, "crop_mode": "periphery", "epoch": 20,
        "classifier": "resnet"})
    run = {"method": "vicreg", "backbone": "convnet", "variant": "default", "train_size": 50,
           "seed": 1, "epoch": 20}
    first = {"crop_mode": "periphery", "embedding": "projector", "k": 20,
             "classifier": "resnet"}
    sslmem = tables.sslmem_table([(run, table)], samples, first)
    row = sslmem.iloc[0]
    assert (row["method"], row["train_size"], row["seed"], row["epoch"]) == ("vicreg", 50, 1, 20)
    assert row["mean_m_train"] == pytest.approx(0.2)
    assert row["mean_m_heldout"] == pytest.approx(-0.05)
    assert row["auc_train_heldout"] == pytest.approx(1.0)
    assert row["mean_m_memorized"] == pytest.approx(0.3)   # a: target right, reference wrong
    assert row["mean_m_correlated"] == pytest.approx(0.1)  # b: both right
    merged = tables.with_sslmem(summary_rows(), sslmem)
    hit = merged[(merged["seed"] == 1) & (merged["epoch"] == 20)]
    assert (hit["sslmem_auc"].notna() == (hit["control"] == "none")).all()
    assert merged.loc[merged["epoch"] != 20, "sslmem_auc"].isna().all()


def one_point_summary() -> pd.DataFrame:
    """One epoch, one size, one seed, one class's worth of rows: the real test only."""
    rows = summary_rows()
    one = rows[(rows["seed"] == 0) & (rows["epoch"] == 20) & (rows["control"] == "none")]
    return one.assign(probe_gap=np.nan, probe_train_acc=np.nan, probe_test_acc=np.nan,
                      knn_test_acc=np.nan)


def image(side=8, value=0):
    return np.full((side, side, 3), value, np.uint8)


def edge_case_figures():
    """Every figure of the page, drawn from the smallest tables a valid config can give."""
    summary = one_point_summary()
    nothing = summary.iloc[:0]
    k1 = ([image()], np.array([3]), "T")  # k = 1: one neighbour to show
    example = dict(crops=[image()], originals=[image(12)], boxes=[(1, 1, 5, 5)],
                   neighbours_t=[k1], neighbours_r=[(k1[0], k1[1], "R")], captions=["a"])
    no_example = dict(crops=[], originals=[], boxes=[], neighbours_t=[], neighbours_r=[],
                      captions=[])
    curve = pd.DataFrame([dict(p=1.0, acc_target=0.5, acc_reference=0.5, acc_target_low=0.4,
                               acc_target_high=0.6, acc_reference_low=0.4,
                               acc_reference_high=0.6, control="none", seed=0)])
    samples = pd.DataFrame({"classifier": ["resnet"] * 2, "control": ["none", "heldout"],
                            "memorization": [np.nan, np.nan]})  # nothing memorized
    sslmem = pd.DataFrame({"set": ["A"], "m": [0.1]})  # training images only, one of them
    drawn = dict(crop=image(), original=image(12), box=(0, 0, 4, 4), label=0,
                 group="memorized", target=([image()], np.array([1.0])),
                 reference=([image()], np.array([0.0])))
    return {
        "trend along epochs, one epoch": lambda: figures.plot_score_trends(summary, "epoch"),
        "trend along size, one size": lambda: figures.plot_score_trends(summary, "train_size"),
        "shares, one point": lambda: figures.plot_share_trends(summary, "train_size"),
        "trends, no rows": lambda: figures.plot_share_trends(nothing, "epoch"),
        "score trend, no rows": lambda: figures.plot_score_trends(nothing, "epoch"),
        "partition, one row": lambda: figures.plot_partition(summary),
        "frontier, one run": lambda: layer_figures.plot_frontier(
            summary.assign(probe_test_acc=0.9, knn_test_acc=np.nan)),
        "depth, one embedding": lambda: layer_figures.plot_depth(
            summary.assign(variant="default")),
        "frontier, inner layers only": lambda: layer_figures.plot_frontier(
            summary.assign(embedding="block2", probe_test_acc=0.9, knn_test_acc=0.8)),
        "curves, one point": lambda: figures.plot_curves(curve, "t"),
        "curves, none": lambda: figures.plot_curves(curve.iloc[:0], "t"),
        "examples, k = 1": lambda: figures.plot_examples(**example),
        "examples, no memorized crop": lambda: figures.plot_examples(**no_example),
        "memorization, none memorized": lambda: figures.plot_memorization(samples, "t"),
        "memorization, no samples": lambda: figures.plot_memorization(samples.iloc[:0], "t"),
        "sslmem, one image": lambda: figures.plot_sslmem(sslmem, {}, "t"),
        "sslmem, no image": lambda: figures.plot_sslmem(sslmem.iloc[:0], {}, "t"),
        "reconstructions, one sample": lambda: figures.plot_reconstructions([drawn], "t"),
        "reconstructions, none": lambda: figures.plot_reconstructions([], "t"),
        "self reconstructions, one image": lambda: figures.plot_self_reconstructions(
            {"original": [image()], "decoder A": [image()], "decoder B": [image()]}),
        "sweep, the default run alone": lambda: layer_figures.plot_sweep(
            tables.sweep_rows(summary, SWEEP), "train.lr"),
        "sweep, no rows": lambda: layer_figures.plot_sweep(
            tables.sweep_rows(nothing, SWEEP), "train.lr"),
    }


SWEEP = {"setting": "train.lr", "methods": ["vicreg"], "base": {"vicreg": 0.001},
         "points": {"lr_0p01": 0.01, "lr_0p1": 0.1}}


def swept_summary(points: dict) -> pd.DataFrame:
    """summary_rows' seeds and controls for the default run and one variant per point,
    each scoring its position, with a probe accuracy."""
    rows = summary_rows()
    parts = [rows.assign(variant=v, score=rows["score"] + i / 10)
             for i, v in enumerate(["default", *points])]
    return pd.concat(parts, ignore_index=True).assign(probe_test_acc=0.8)


@pytest.mark.parametrize("case", list(edge_case_figures()))
def test_every_figure_draws_from_edge_case_tables(case, tmp_path):
    png = figures.figure_png(edge_case_figures()[case](), tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG" and len(png) > 100
    assert "<svg" in (tmp_path / "f.svg").read_text()


def rich_figures():
    """Figures with every control, several lines and drawn samples (the edge cases have
    one of each)."""
    curve = pd.DataFrame([dict(p=p, acc_target=0.6, acc_reference=0.5, acc_target_low=0.5,
                               acc_target_high=0.7, acc_reference_low=0.4,
                               acc_reference_high=0.6, control=control, seed=0)
                          for control in ("untrained", "none", "heldout") for p in (0.2, 1.0)])
    samples = pd.DataFrame({"classifier": ["resnet"] * 4,
                            "control": ["none", "none", "heldout", "heldout"],
                            "memorization": [0.1, 0.5, 0.2, -0.1]})
    sslmem = pd.DataFrame({"set": ["A", "B", "heldout"], "m": [0.1, 0.3, -0.1]})
    drawn = dict(crop=image(), original=image(12), box=(0, 0, 4, 4), label=0,
                 group="memorized", target=([image(), image()], np.array([1.0, 0.0])),
                 reference=([image(), image()], np.array([0.0, 0.0])))
    return {"curves, three controls": lambda: figures.plot_curves(curve, "t"),
            "memorization, both controls": lambda: figures.plot_memorization(samples, "t"),
            "sslmem, both sets": lambda: figures.plot_sslmem(
                sslmem, {"mean_m_memorized": 0.2}, "t"),
            "reconstructions, two samples": lambda: figures.plot_reconstructions([drawn], "t"),
            "partition, rows of each control": lambda: figures.plot_partition(summary_rows()),
            "score trends, rows": lambda: figures.plot_score_trends(
                summary_rows().assign(probe_gap=0.1), "epoch"),
            "sweep, seeds, controls and the probe": lambda: layer_figures.plot_sweep(
                tables.sweep_rows(swept_summary(SWEEP["points"]), SWEEP), "train.lr"),
            "sweep of a list setting": lambda: layer_figures.plot_sweep(tables.sweep_rows(
                swept_summary({"head_64": [64]}),
                {**SWEEP, "base": {"vicreg": [512, 512]}, "points": {"head_64": [64]}}),
                "model.projector")}


def reader_problems(fig) -> list[str]:
    """What a reader of `fig` would trip over: a code name of a control in a title, label or
    legend; a legend over a panel's data; a line or bar in a colour outside the
    colour-blind-safe palette."""
    import re

    from matplotlib.colors import to_hex
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + fig.legends
    texts = [ax.get_title() for ax in fig.axes] + [t.get_text() for ax in fig.axes
                                                   for t in ax.get_yticklabels()]
    texts += [t.get_text() for lg in legends for t in lg.get_texts()]
    problems = [f"code name in {text!r}" for text in texts
                if re.search(r"\b(heldout|none)\b", text)]
    panels = [ax.get_window_extent(renderer) for ax in fig.axes if ax.has_data()]
    problems += [f"legend over a panel: {[t.get_text() for t in lg.get_texts()]}"
                 for lg in legends
                 if any(lg.get_window_extent(renderer).overlaps(box) for box in panels)]
    allowed = {c.lower() for c in [*figures.PALETTE, figures.GREY, figures.LIGHT_GREY,
                                   "#000000", "#ffffff"]}
    for ax in fig.axes:
        colours = [line.get_color() for line in ax.get_lines()]
        colours += [patch.get_facecolor() for patch in ax.patches if patch.get_fill()]
        colours += [spine.get_edgecolor() for spine in ax.spines.values()
                    if spine.get_visible() and spine.get_linewidth() > 1]
        problems += [f"colour {to_hex(c)} outside the palette" for c in colours
                     if to_hex(c, keep_alpha=False) not in allowed]
    return problems


@pytest.mark.parametrize("case", [*edge_case_figures(), *rich_figures()])
def test_every_figure_names_controls_in_words_keeps_legends_off_the_data_in_safe_colours(
        case):
    import matplotlib.pyplot as plt
    fig = {**edge_case_figures(), **rich_figures()}[case]()
    try:
        assert reader_problems(fig) == []
    finally:
        plt.close(fig)


def test_the_reader_check_finds_what_the_old_figures_did():
    """The check above fails on what the figures used to do: a raw control name as a panel
    title, a legend inside the panel, red and green from matplotlib's default cycle."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], color="tab:red", label="target")
    ax.set_title("heldout (band: bootstrap 95%)")
    ax.legend(loc="center")
    problems = reader_problems(fig)
    plt.close(fig)
    assert any("code name" in p for p in problems)
    assert any("legend over a panel" in p for p in problems)
    assert any("outside the palette" in p for p in problems)


def test_a_sweeps_figure_rows_are_its_variants_and_the_default_run_at_its_value():
    rows = tables.sweep_rows(swept_summary({**SWEEP["points"], "other": 1}), SWEEP)
    assert set(rows["variant"]) == {"default", "lr_0p01", "lr_0p1"}  # not "other"
    assert set(rows["epoch"]) == {20} and set(rows["control"]) == {"none", "heldout"}
    assert dict(zip(rows["variant"], rows["x"])) == {"default": 0.001, "lr_0p01": 0.01,
                                                    "lr_0p1": 0.1}
    fig = layer_figures.plot_sweep(rows, "train.lr")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_title() == "vicreg"
    # per embedding: the real test through the three values, and its held-out control
    lines = {bars.get_label(): bars.lines[0] for bars in ax.containers}
    assert sorted(lines["projector"].get_xdata()) == [0.001, 0.01, 0.1]
    assert "projector held-out" in lines
    assert [bars.get_label() for bars in fig.axes[1].containers] == ["linear probe"]


def test_the_summary_says_each_rows_recipe_and_sweep_point():
    rows = swept_summary({"lr_0p1": 0.1, "head_64": [64]})
    rows.loc[rows["variant"] == "head_64", "method"] = "external"
    labels = {"recipes": {"vicreg": "train.lr=0.3"},
              "sweeps": [{"setting": "train.lr", "points": {"lr_0p1": 0.1}},
                         {"setting": "model.projector", "points": {"head_64": [64]}}]}
    out = tables.with_labels(rows, labels)
    by_variant = out.drop_duplicates("variant").set_index("variant")
    assert by_variant.loc["default", "recipe"] == "train.lr=0.3"
    assert by_variant.loc["head_64", "recipe"] == "external"
    assert pd.isna(by_variant.loc["default", "sweep"])
    assert by_variant.loc["lr_0p1", ["sweep", "sweep_value"]].tolist() == ["train.lr", 0.1]
    assert by_variant.loc["head_64", "sweep_value"] == [64]

