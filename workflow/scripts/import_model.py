from dejavu.training import external
from dejavu.core import logs

logs.to_file(snakemake.log[0])
params = snakemake.params
external.run(snakemake.input.source, snakemake.output.checkpoint, epoch=params.epoch,
             image_size=params.image_size, **params.model)
logs.finish()
