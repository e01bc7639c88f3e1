from dejavu.core.logs import job
from dejavu.vlm import stages

with job(snakemake) as params:
    stages.run_test(snakemake.input.store, snakemake.input.split,
                    {"A": snakemake.input.a, "B": snakemake.input.b}, snakemake.output[0],
                    **params)
