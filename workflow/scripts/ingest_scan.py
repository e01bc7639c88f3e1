from dejavu.data import ingest
from dejavu.core import logs

logs.to_file(snakemake.log[0])
ingest.run_scan(snakemake.params.dataset, snakemake.output.manifest, snakemake.output.classes,
                snakemake.output.rejects)
logs.finish()
