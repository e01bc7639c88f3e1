from dejavu.core.logs import job
from dejavu.vlm import stages

with job(snakemake) as params:
    stages.run_embed(snakemake.input.store, snakemake.input.checkpoint, snakemake.output[0],
                     threads=snakemake.threads, **params)
