from dejavu.attack import knn
from dejavu.core import logs

logs.to_file(snakemake.log[0])
knn.run(snakemake.input.get("index"), snakemake.input.public, snakemake.input.crops,
        snakemake.input.crops_table, snakemake.input.split, snakemake.output.knn,
        threads=snakemake.threads, checkpoint=snakemake.input.checkpoint,
        **dict(snakemake.params.items()))
logs.finish()
