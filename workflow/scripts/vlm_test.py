from dejavu.core.logs import job
from dejavu.vlm import scoring

with job(snakemake) as params:
    scoring.run_test(snakemake.input.store, snakemake.input.split,
                     {"A": snakemake.input.a, "B": snakemake.input.b}, snakemake.output[0],
                     **params)
