from dejavu.core import logs
from dejavu.report import page

logs.to_file(snakemake.log[0])
page.run(dict(snakemake.input.items()), dict(snakemake.output.items()),
         **dict(snakemake.params.items()))
logs.finish()
