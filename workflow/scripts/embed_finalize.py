from dejavu import embed, logs

logs.to_file(snakemake.log[0])
embed.finalize(list(snakemake.input.markers), snakemake.output.store,
               checkpoint=snakemake.input.checkpoint)
