from dejavu.attack import index
from dejavu.core.logs import job

with job(snakemake) as params:
    index.run(snakemake.input.store, snakemake.output.index, threads=snakemake.threads,
              checkpoint=snakemake.input.checkpoint, **params)
