from dejavu.core.logs import job
from dejavu.data import crops

with job(snakemake) as params:
    crops.run(snakemake.input.images, snakemake.input.index, snakemake.input.split,
              snakemake.output.crops, snakemake.output.table, **params)
