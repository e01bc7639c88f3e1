from dejavu.core.logs import job
from dejavu.rcdm import decoder_sample

inputs = snakemake.input
with job(snakemake) as params:
    decoder_sample.run_sample(
        {s: inputs[f"decoder_{s}"] for s in "AB"}, {s: inputs[f"checkpoint_{s}"] for s in "AB"},
        {s: inputs[f"public_{s}"] for s in "AB"}, {s: inputs[f"knn_{s}"] for s in "AB"},
        inputs.images, inputs.split, inputs.crops, snakemake.output.images,
        snakemake.output.table, snakemake.output.json, threads=snakemake.threads, **params)
