from dejavu.core.logs import job
from dejavu.report import page

with job(snakemake) as params:
    page.run(dict(snakemake.input.items()), dict(snakemake.output.items()), **params)
