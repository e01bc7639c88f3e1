from dejavu.core.logs import job
from dejavu.rcdm import decoder_train

inputs = snakemake.input
# the time limit comes from the config, not params: it changes no weight, so changing it
# reruns nothing
with job(snakemake) as params:
    decoder_train.run_train(inputs.checkpoint, inputs.public, inputs.images, inputs.split,
                            snakemake.output.decoder, threads=snakemake.threads,
                            max_runtime=snakemake.config["rcdm"]["max_runtime"], **params)
