from dejavu import logs, train

logs.to_file(snakemake.log[0])
train.run_init(snakemake.output.checkpoint, **dict(snakemake.params.items()))
