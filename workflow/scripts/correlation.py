from dejavu.onemodel import correlation
from dejavu.core import logs

logs.to_file(snakemake.log[0])
correlation.run(snakemake.input.crops, snakemake.input.table, snakemake.input.split,
                snakemake.output.predictions, model_path=snakemake.output.model,
                index_path=snakemake.input.get("index"), tags_path=snakemake.input.get("tags"),
                threads=snakemake.threads, **dict(snakemake.params.items()))
logs.finish()
