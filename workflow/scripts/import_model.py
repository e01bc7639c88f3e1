from dejavu import external, logs

logs.to_file(snakemake.log[0])
external.run(snakemake.input.source, snakemake.output.checkpoint,
             **dict(snakemake.params.items()))
