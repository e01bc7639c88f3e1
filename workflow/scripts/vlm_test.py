from dejavu.core.logs import job
from dejavu.vlm import scoring

with job(snakemake) as params:
    stores = {"A": snakemake.input.a, "B": snakemake.input.b}
    if "g" in snakemake.input.keys():  # the one-model test's reference text model
        stores["g"] = snakemake.input.g
    scoring.run_test(snakemake.input.store, snakemake.input.split, stores, snakemake.output[0],
                     **params)
