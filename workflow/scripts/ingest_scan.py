from dejavu.core.logs import job
from dejavu.data import ingest

with job(snakemake) as params:
    ingest.run_scan(params["dataset"], snakemake.output.manifest, snakemake.output.classes,
                    snakemake.output.rejects)
