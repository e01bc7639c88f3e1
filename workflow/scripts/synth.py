import json

from dejavu.core import logs
from dejavu.data import synth

logs.to_file(snakemake.log[0])
params = dict(snakemake.params.items())
settings = params.pop("settings")
synth.run(snakemake.output.images, snakemake.output.index, snakemake.output.rejects, **params)
with open(snakemake.output.source, "w") as f:  # written last: the store is whole
    json.dump(settings, f, indent=1)
logs.finish()
