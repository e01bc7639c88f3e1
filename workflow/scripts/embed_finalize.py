from dejavu.attack import embeddings
from dejavu.core.logs import job

with job(snakemake):
    embeddings.finalize(list(snakemake.input.markers), snakemake.output.store,
                        checkpoint=snakemake.input.checkpoint)
