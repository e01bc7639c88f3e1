from dejavu.core.logs import job
from dejavu.vlm import external

with job(snakemake) as params:
    external.run_embed(snakemake.input.store, snakemake.output[0],
                       checkpoint=snakemake.input.checkpoint, threads=snakemake.threads, **params)
