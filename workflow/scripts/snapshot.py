from dejavu.core import logs
from dejavu.training import train

# guarded: data-parallel training spawns processes that re-import this file (the loader
# settings come from the config, not params: they change no weight, so no rerun)
if __name__ == "__main__":
    logs.to_file(snakemake.log[0])
    train.run_snapshot(snakemake.input.init, snakemake.input.get("state"),
                       snakemake.input.images, snakemake.input.split, snakemake.output.checkpoint,
                       threads=snakemake.threads, loader=snakemake.config["train"]["loader"],
                       **dict(snakemake.params.items()))
logs.finish()
