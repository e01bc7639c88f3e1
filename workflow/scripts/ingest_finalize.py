import json

from dejavu.core.logs import job
from dejavu.data import ingest

with job(snakemake) as params:
    ingest.finalize(snakemake.input.manifest, snakemake.input.scan_rejects,
                    list(snakemake.input.metas), snakemake.output.images,
                    snakemake.output.index, snakemake.output.rejects)
    with open(snakemake.output.source, "w") as f:  # written last: the store is whole
        json.dump(params["settings"], f, indent=1)
