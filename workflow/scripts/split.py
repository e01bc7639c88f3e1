from dejavu.core import logs
from dejavu.data import split

logs.to_file(snakemake.log[0])
split.run(snakemake.input.index, snakemake.output.split, snakemake.output.sizes,
          **dict(snakemake.params.items()))
logs.finish()
