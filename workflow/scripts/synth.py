from dejavu import logs, synth

logs.to_file(snakemake.log[0])
synth.run(snakemake.output.images, snakemake.output.index, **dict(snakemake.params.items()))
