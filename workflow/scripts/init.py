from dejavu.core.logs import job
from dejavu.training import train

with job(snakemake) as params:
    train.run_init(snakemake.output.checkpoint, **params)
