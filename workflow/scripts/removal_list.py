from dejavu.data import removal
from dejavu.core.logs import job

with job(snakemake) as params:
    removal.run(snakemake.input.sslmem, snakemake.output[0], **params)
