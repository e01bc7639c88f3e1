from dejavu.core import logs
from dejavu.training import train

logs.to_file(snakemake.log[0])
train.run_init(snakemake.output.checkpoint, **dict(snakemake.params.items()))
logs.finish()
