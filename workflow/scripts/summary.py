from dejavu.core.logs import job
from dejavu.report import summary

with job(snakemake) as params:
    summary.run(dict(snakemake.input.items()), snakemake.output[0], **params)
