from dejavu.training import external
from dejavu.core import logs

logs.to_file(snakemake.log[0])
external.run(snakemake.input.source, snakemake.output.checkpoint,
             **dict(snakemake.params.items()))
