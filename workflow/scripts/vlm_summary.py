from dejavu.core.logs import job
from dejavu.vlm import stages

with job(snakemake) as params:
    stages.run_summary(list(snakemake.input), snakemake.output[0])
