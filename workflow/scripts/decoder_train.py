from dejavu import logs, rcdm

logs.to_file(snakemake.log[0])
rcdm.run_train(snakemake.input.checkpoint, snakemake.input.public, snakemake.input.images,
               snakemake.input.split, snakemake.output.decoder, threads=snakemake.threads,
               **dict(snakemake.params.items()))
