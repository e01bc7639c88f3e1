from dejavu import logs, rcdm

logs.to_file(snakemake.log[0])
inputs = snakemake.input
rcdm.run_sample(
    {s: inputs[f"decoder_{s}"] for s in "AB"}, {s: inputs[f"checkpoint_{s}"] for s in "AB"},
    {s: inputs[f"public_{s}"] for s in "AB"}, {s: inputs[f"knn_{s}"] for s in "AB"},
    inputs.images, inputs.split, inputs.crops, snakemake.output.images, snakemake.output.table,
    snakemake.output.json, threads=snakemake.threads, **dict(snakemake.params.items()))
