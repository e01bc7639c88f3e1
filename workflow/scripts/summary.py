from dejavu.core import logs
from dejavu.report import summary

logs.to_file(snakemake.log[0])
summary.run(dict(snakemake.input.items()), snakemake.output[0],
            **dict(snakemake.params.items()))
logs.finish()
