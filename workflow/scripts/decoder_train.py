from dejavu.core import logs
from dejavu.rcdm import decoder_train

logs.to_file(snakemake.log[0])
inputs = snakemake.input
decoder_train.run_train(inputs.checkpoint, inputs.public, inputs.images, inputs.split,
                        snakemake.output.decoder, threads=snakemake.threads,
                        **dict(snakemake.params.items()))
