from dejavu.core import logs
from dejavu.data import synth

logs.to_file(snakemake.log[0])
synth.run(snakemake.output.images, snakemake.output.index, snakemake.output.rejects, **dict(snakemake.params.items()))
