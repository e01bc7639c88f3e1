from dejavu.core.logs import job
from dejavu.vlm import data

with job(snakemake) as params:
    data.run_split(f"{snakemake.input.store}/records.parquet", snakemake.output[0], **params)
