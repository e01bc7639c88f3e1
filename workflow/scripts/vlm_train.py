from dejavu.core.logs import job
from dejavu.vlm import stages

with job(snakemake) as params:
    epochs = params["epochs"]
    stages.run_train(snakemake.input.store, snakemake.input.split,
                     {0: snakemake.output.untrained, epochs: snakemake.output.trained},
                     threads=snakemake.threads, **params)
