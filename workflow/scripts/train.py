from dejavu.core.logs import job
from dejavu.training import train

# guarded: data-parallel training spawns processes that re-import this file. The loader
# settings and the time limit come from the config, not params: they change no weight, so
# changing them reruns nothing
if __name__ == "__main__":
    settings = snakemake.config["train"]
    with job(snakemake) as params:
        out_paths = dict(zip(params.pop("epochs_saved"), snakemake.output.states))
        train.run(snakemake.input.init, snakemake.input.images, snakemake.input.split,
                  out_paths, threads=snakemake.threads, loader=settings["loader"],
                  max_runtime=settings["max_runtime"],
                  removed=snakemake.input.get("removed") or None, **params)
