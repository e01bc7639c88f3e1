from dejavu import logs, split

logs.to_file(snakemake.log[0])
split.run(snakemake.input.index, snakemake.output.split, snakemake.output.sizes,
          **dict(snakemake.params.items()))
