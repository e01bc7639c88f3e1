from dejavu.attack import probe
from dejavu.core.logs import job

with job(snakemake) as params:
    probe.run(snakemake.input.checkpoint, snakemake.input.images, snakemake.input.split,
              snakemake.output.json, threads=snakemake.threads,
              public_store=snakemake.input.public, out_correct=snakemake.output.correct,
              **params)
