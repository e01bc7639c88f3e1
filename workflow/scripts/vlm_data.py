from dejavu.core.logs import job
from dejavu.vlm import data, ingest

with job(snakemake) as params:
    source = params.pop("source")
    if source == "synthetic":
        data.run_synthetic(snakemake.output[0], **params)
    else:
        ingest.run(snakemake.output[0], source=source, **params)
