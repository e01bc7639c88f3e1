from dejavu.core import logs
from dejavu.rcdm import decoder_sample

logs.to_file(snakemake.log[0])
inputs = snakemake.input
decoder_sample.run_sample(
    {s: inputs[f"decoder_{s}"] for s in "AB"}, {s: inputs[f"checkpoint_{s}"] for s in "AB"},
    {s: inputs[f"public_{s}"] for s in "AB"}, {s: inputs[f"knn_{s}"] for s in "AB"},
    inputs.images, inputs.split, inputs.crops, snakemake.output.images, snakemake.output.table,
    snakemake.output.json, threads=snakemake.threads, **dict(snakemake.params.items()))
logs.finish()
