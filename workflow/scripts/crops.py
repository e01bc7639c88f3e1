from dejavu.data import crops
from dejavu.core import logs

logs.to_file(snakemake.log[0])
crops.run(snakemake.input.images, snakemake.input.index, snakemake.input.split,
          snakemake.output.crops, snakemake.output.table, **dict(snakemake.params.items()))
logs.finish()
