from dejavu.core.logs import job
from dejavu.training import train

# guarded: data-parallel training spawns processes that re-import this file (the loader
# settings come from the config, not params: they change no weight, so no rerun)
if __name__ == "__main__":
    with job(snakemake) as params:
        train.run_snapshot(snakemake.input.init, snakemake.input.get("state"),
                           snakemake.input.images, snakemake.input.split,
                           snakemake.output.checkpoint, threads=snakemake.threads,
                           loader=snakemake.config["train"]["loader"],
                           removed=snakemake.input.get("removed") or None, **params)
