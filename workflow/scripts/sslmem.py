from dejavu.core.logs import job
from dejavu.onemodel import sslmem

with job(snakemake) as params:
    sslmem.run(snakemake.input.checkpoint_a, snakemake.input.checkpoint_b,
               snakemake.input.images, snakemake.input.split, snakemake.output.table,
               threads=snakemake.threads, out_layers=snakemake.output.layers, **params)
