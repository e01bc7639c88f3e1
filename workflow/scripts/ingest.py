from dejavu.data import ingest
from dejavu.core import logs

logs.to_file(snakemake.log[0])
params = dict(snakemake.params.items())
ingest.run_shard(snakemake.input.manifest, params.pop("images"), snakemake.output.meta,
                 workers=snakemake.threads, **params)
logs.finish()
