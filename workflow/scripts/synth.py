import json

from dejavu.core.logs import job
from dejavu.data import synth

with job(snakemake) as params:
    settings = params.pop("settings")
    synth.run(snakemake.output.images, snakemake.output.index, snakemake.output.rejects,
              **params)
    with open(snakemake.output.source, "w") as f:  # written last: the store is whole
        json.dump(settings, f, indent=1)
