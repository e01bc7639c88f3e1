from dejavu.core.logs import job
from dejavu.onemodel import correlation

# the time limit comes from the config, not params: it changes no weight, so changing it
# reruns nothing
with job(snakemake) as params:
    correlation.run(snakemake.input.crops, snakemake.input.table, snakemake.input.split,
                    snakemake.output.predictions, model_path=snakemake.output.model,
                    index_path=snakemake.input.get("index"),
                    tags_path=snakemake.input.get("tags"), threads=snakemake.threads,
                    max_runtime=snakemake.config["onemodel"]["max_runtime"], **params)
