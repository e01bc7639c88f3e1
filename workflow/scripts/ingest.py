from dejavu.core.logs import job
from dejavu.data import ingest

with job(snakemake) as params:
    ingest.run_shard(snakemake.input.manifest, params.pop("images"), snakemake.output.meta,
                     workers=snakemake.threads, **params)
