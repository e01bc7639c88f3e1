from dejavu.core.logs import job
from dejavu.onemodel import unitmem

with job(snakemake) as params:
    unitmem.run(snakemake.input.checkpoint_a, snakemake.input.checkpoint_b,
                snakemake.input.images, snakemake.input.split, snakemake.output[0],
                threads=snakemake.threads, **params)
