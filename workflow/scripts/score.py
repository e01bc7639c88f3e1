from dejavu.attack import score
from dejavu.core.logs import job

with job(snakemake) as params:
    score.run(snakemake.input.knn_a, snakemake.input.knn_b, snakemake.output.json,
              snakemake.output.curves, out_boot=snakemake.output.boot, **params)
