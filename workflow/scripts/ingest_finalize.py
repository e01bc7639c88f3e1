import json

from dejavu.data import ingest
from dejavu.core import logs

logs.to_file(snakemake.log[0])
ingest.finalize(snakemake.input.manifest, snakemake.input.scan_rejects, list(snakemake.input.metas),
                snakemake.output.images, snakemake.output.index, snakemake.output.rejects)
with open(snakemake.output.source, "w") as f:  # written last: the store is whole
    json.dump(snakemake.params.settings, f, indent=1)
logs.finish()
