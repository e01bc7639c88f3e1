from dejavu import logs, report

logs.to_file(snakemake.log[0])
report.run(dict(snakemake.input.items()), dict(snakemake.output.items()),
           **dict(snakemake.params.items()))
