from dejavu.data import ingest
from dejavu.core import logs

logs.to_file(snakemake.log[0])
ingest.finalize(snakemake.input.manifest, snakemake.input.scan_rejects, list(snakemake.input.metas),
                snakemake.output.images, snakemake.output.index, snakemake.output.rejects)
