from dejavu.core.logs import job
from dejavu.data import split

with job(snakemake) as params:
    split.run(snakemake.input.index, snakemake.output.split, snakemake.output.sizes, **params)
