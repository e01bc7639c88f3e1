from dejavu.core.logs import job
from dejavu.vlm import data

with job(snakemake) as params:
    data.run_synthetic(snakemake.output[0], **params)
