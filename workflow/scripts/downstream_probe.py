from dejavu.attack import downstream
from dejavu.core.logs import job

with job(snakemake) as params:
    downstream.run(snakemake.input.checkpoint, snakemake.input.images, snakemake.input.index,
                   snakemake.output[0], threads=snakemake.threads, **params)
