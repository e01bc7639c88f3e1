"""The README's figure: the demo report's Figure 3 (k-NN accuracy of target and reference on
their most confident crops, one panel per control), copied from a finished demo run into
docs/figures/readme_curves.png (and its SVG beside it).

    snakemake --cores 2                      # the demo, to results/
    python bench/readme_figure.py [--results results]

Only the demo's own figure is taken: the run must be the synthetic benchmark at the demo's
size (50 images per class in each of A and B), VICReg on the ConvNet, projector embedding.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the report's name for it (dejavu/report/page.py, curve_sections): its keys in order
FIGURE = "curves_synthetic_vicreg_convnet_50_projector_20_periphery"
OUT = REPO / "docs" / "figures" / "readme_curves"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "results")
    results = parser.parse_args().results
    figures = results / "figures"
    import pandas as pd
    summary = pd.read_csv(results / "summary.csv")
    demo = summary[(summary["dataset"] == "synthetic") & (summary["method"] == "vicreg")
                   & (summary["backbone"] == "convnet") & (summary["train_size"] == 50)]
    if demo.empty:
        raise SystemExit(f"{results} holds no demo run (synthetic, vicreg, convnet, n50)")
    for suffix in (".png", ".svg"):
        source = figures / f"{FIGURE}{suffix}"
        if not source.exists():
            raise SystemExit(f"{source} is missing: run the demo's report first")
        shutil.copyfile(source, OUT.with_suffix(suffix))
        print(f"{source} -> {OUT.with_suffix(suffix).relative_to(REPO)}")


if __name__ == "__main__":
    main()
