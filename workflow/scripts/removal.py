from dejavu.data import removal
from dejavu.core.logs import job

with job(snakemake) as params:
    removal.table(list(snakemake.input.probes),
                  list(snakemake.input.downstream), params["dataset"]).to_csv(snakemake.output[0], index=False)
