from dejavu.core import logs
from dejavu.attack import probe

logs.to_file(snakemake.log[0])
probe.run(snakemake.input.checkpoint, snakemake.input.images, snakemake.input.split,
          snakemake.output.json, threads=snakemake.threads, public_store=snakemake.input.public,
          out_correct=snakemake.output.correct,
          **dict(snakemake.params.items()))
logs.finish()
