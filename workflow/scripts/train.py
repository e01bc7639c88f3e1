from dejavu import logs, train

logs.to_file(snakemake.log[0])
params = dict(snakemake.params.items())
out_paths = dict(zip(params.pop("epochs_saved"), snakemake.output.checkpoints))
train.run(snakemake.input.init, snakemake.input.images, snakemake.input.split, out_paths,
          threads=snakemake.threads, **params)
