from dejavu.core import logs
from dejavu.onemodel import sslmem

logs.to_file(snakemake.log[0])
sslmem.run(snakemake.input.checkpoint_a, snakemake.input.checkpoint_b, snakemake.input.images,
           snakemake.input.split, snakemake.output.table, threads=snakemake.threads,
           out_layers=snakemake.output.layers, **dict(snakemake.params.items()))
logs.finish()
