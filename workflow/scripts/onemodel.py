from dejavu.core import logs
from dejavu.onemodel import onemodel

logs.to_file(snakemake.log[0])
onemodel.run(snakemake.input.knn_a, snakemake.input.g_b, snakemake.output.json,
             snakemake.output.samples, snakemake.output.curves,
             knn_b=snakemake.input.get("knn_b"), g_a=snakemake.input.get("g_a"),
             **dict(snakemake.params.items()))
logs.finish()
