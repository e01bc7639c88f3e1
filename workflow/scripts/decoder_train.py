from dejavu.core import logs
from dejavu.core.resume import OUT_OF_TIME_EXIT, OutOfTime
from dejavu.rcdm import decoder_train

logs.to_file(snakemake.log[0])
inputs = snakemake.input
# the time limit comes from the config, not params: it changes no weight, so changing it
# reruns nothing
try:
    decoder_train.run_train(inputs.checkpoint, inputs.public, inputs.images, inputs.split,
                            snakemake.output.decoder, threads=snakemake.threads,
                            max_runtime=snakemake.config["rcdm"]["max_runtime"],
                            **dict(snakemake.params.items()))
except OutOfTime as stopped:
    # a failed attempt to Snakemake, which resubmits it (the rule's retries)
    decoder_train.log.info("%s; the next attempt continues", stopped)
    logs.finish(OUT_OF_TIME_EXIT)
logs.finish()
