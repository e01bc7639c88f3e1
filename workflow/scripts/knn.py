from dejavu.attack import knn
from dejavu.core.logs import job

with job(snakemake) as params:
    knn.run(snakemake.input.get("index"), snakemake.input.public, snakemake.input.crops,
            snakemake.input.crops_table, snakemake.input.split, snakemake.output.knn,
            threads=snakemake.threads, checkpoint=snakemake.input.checkpoint, **params)
