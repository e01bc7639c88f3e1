from dejavu.attack import embed
from dejavu.core.logs import job

with job(snakemake) as params:
    embed.run_shard(snakemake.input.checkpoint, snakemake.input.images, snakemake.input.table,
                    params.pop("store"), snakemake.output.marker, threads=snakemake.threads,
                    **params)
