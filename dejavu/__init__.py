"""dejavu: measure déjà vu memorization in self-supervised vision models.

Each stage of the workflow is a module with pure functions on arrays and one `run(...)`
that alone sees paths: synth, split, crops, train, embed, index, knn, score, report.
The package never imports snakemake and never reads config files.
"""

__version__ = "0.1.0"
