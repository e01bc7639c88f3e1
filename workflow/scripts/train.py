from dejavu.core import logs
from dejavu.training import train

# guarded: data-parallel training spawns processes that re-import this file. The loader
# settings come from the config, not params: they change no weight, so no rerun
if __name__ == "__main__":
    logs.to_file(snakemake.log[0])
    params = dict(snakemake.params.items())
    out_paths = dict(zip(params.pop("epochs_saved"), snakemake.output.states))
    train.run(snakemake.input.init, snakemake.input.images, snakemake.input.split, out_paths,
              threads=snakemake.threads, loader=snakemake.config["train"]["loader"], **params)
