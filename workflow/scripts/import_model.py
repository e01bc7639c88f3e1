from dejavu.core.logs import job
from dejavu.training import external

with job(snakemake) as params:
    external.run(snakemake.input.source, snakemake.output.checkpoint, epoch=params["epoch"],
                 image_size=params["image_size"], **params["model"])
