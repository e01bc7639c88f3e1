"""The summary rule: `summary.csv` (definitions §9), written before and apart from the
figures, so no figure can cost the numbers. The report page reads the same file."""

from __future__ import annotations

import pandas as pd

from . import loading, mitigation, tables
from .loading import files


def onemodel_parts(inputs: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every one-model row, and the per-image samples labelled with their combination."""
    rows = files(inputs, "onemodel")
    samples = loading.labelled_parts(rows, files(inputs, "onemodel_samples"),
                                     tables.KEYS + ["epoch", "classifier"])
    return tables.onemodel_table(loading.json_rows(rows)), samples


def sslmem_figures(inputs: dict, samples: pd.DataFrame, first: dict,
                   sslmem_runs: list[dict]) -> pd.DataFrame:
    """SSLMem per model pair and epoch; `first` (crop_mode, embedding, k, classifier) picks
    the two-model partition it is set against."""
    loaded = loading.sslmem_tables(files(inputs, "sslmem"), sslmem_runs)
    return tables.sslmem_table(loaded, samples, first)


def mitigation_changes(inputs: dict, summary: pd.DataFrame, n_boot: int,
                       seed: int) -> pd.DataFrame:
    """The summary with each variant's change against default (definitions §10) and
    whether its row is on the privacy-utility frontier."""
    scores = mitigation.score_changes(summary, mitigation.score_replicates(
        files(inputs, "scores"), files(inputs, "boots")))
    utilities = mitigation.utility_changes(mitigation.utility_parts(
        files(inputs, "probes"), files(inputs, "probe_correct")), n_boot, seed)
    out = mitigation.with_changes(summary, scores, utilities)
    return out.assign(frontier=mitigation.frontier(out))


def run(inputs: dict, output: str, *, classifier: str | None, first: dict,
        sslmem_runs: list[dict], n_boot: int = 1000, seed: int = 0,
        labels: dict | None = None) -> None:
    onemodel, samples = onemodel_parts(inputs)
    summary = tables.summary(tables.score_table(loading.json_rows(files(inputs, "scores"))),
                             tables.probe_table(loading.probe_rows(files(inputs, "probes"))),
                             onemodel, classifier,
                             sslmem_figures(inputs, samples, first, sslmem_runs),
                             loading.layermem_rows(files(inputs, "sslmem_layers"), sslmem_runs))
    summary = tables.with_labels(summary, labels)
    mitigation_changes(inputs, summary, n_boot, seed).to_csv(output, index=False)
