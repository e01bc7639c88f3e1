"""The summary rule: `summary.csv` (definitions §9), written before and apart from the
figures, so no figure can cost the numbers. The report page reads the same file."""

from __future__ import annotations

import pandas as pd

from . import loading, tables
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


def run(inputs: dict, output: str, *, classifier: str | None, first: dict,
        sslmem_runs: list[dict]) -> None:
    onemodel, samples = onemodel_parts(inputs)
    summary = tables.summary(tables.score_table(loading.json_rows(files(inputs, "scores"))),
                             tables.probe_table(loading.probe_rows(files(inputs, "probes"))),
                             onemodel, classifier,
                             sslmem_figures(inputs, samples, first, sslmem_runs))
    summary.to_csv(output, index=False)
