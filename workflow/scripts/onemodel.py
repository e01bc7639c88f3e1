from dejavu.core.logs import job
from dejavu.onemodel import onemodel

with job(snakemake) as params:
    onemodel.run(snakemake.input.knn_a, snakemake.input.g_b, snakemake.output.json,
                 snakemake.output.samples, snakemake.output.curves,
                 knn_b=snakemake.input.get("knn_b"), g_a=snakemake.input.get("g_a"), **params)
