from dejavu.attack import index
from dejavu.core import logs

logs.to_file(snakemake.log[0])
index.run(snakemake.input.store, snakemake.output.index, threads=snakemake.threads,
          checkpoint=snakemake.input.checkpoint,
          **dict(snakemake.params.items()))
logs.finish()
