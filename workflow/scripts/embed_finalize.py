from dejavu.attack import embeddings
from dejavu.core import logs

logs.to_file(snakemake.log[0])
embeddings.finalize(list(snakemake.input.markers), snakemake.output.store,
                    checkpoint=snakemake.input.checkpoint)
logs.finish()
