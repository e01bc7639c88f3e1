from dejavu.attack import embed
from dejavu.core import logs

logs.to_file(snakemake.log[0])
params = dict(snakemake.params.items())
embed.run_shard(snakemake.input.checkpoint, snakemake.input.images, snakemake.input.table,
                params.pop("store"), snakemake.output.marker, threads=snakemake.threads,
                **params)
logs.finish()
