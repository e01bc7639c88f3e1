from dejavu.core.logs import job
from dejavu.vlm import reference

with job(snakemake) as params:
    reference.run_embed(snakemake.input.store, snakemake.input.split, snakemake.output[0],
                        **params)
