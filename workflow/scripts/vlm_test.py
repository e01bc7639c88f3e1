from dejavu.core.logs import job
from dejavu.vlm import scoring

with job(snakemake) as params:
    stores = {name.upper() if name in "ab" else name: getattr(snakemake.input, name)
              for name in ("a", "b", "g") if name in snakemake.input.keys()}
    scoring.run_test(snakemake.input.store, snakemake.input.split, stores, snakemake.output[0],
                     **params)
