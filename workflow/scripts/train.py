from dejavu.core import logs
from dejavu.core.resume import OUT_OF_TIME_EXIT, OutOfTime
from dejavu.training import train

# guarded: data-parallel training spawns processes that re-import this file. The loader
# settings and the time limit come from the config, not params: they change no weight, so
# changing them reruns nothing
if __name__ == "__main__":
    logs.to_file(snakemake.log[0])
    params = dict(snakemake.params.items())
    out_paths = dict(zip(params.pop("epochs_saved"), snakemake.output.states))
    settings = snakemake.config["train"]
    try:
        train.run(snakemake.input.init, snakemake.input.images, snakemake.input.split,
                  out_paths, threads=snakemake.threads, loader=settings["loader"],
                  max_runtime=settings["max_runtime"], **params)
    except OutOfTime as stopped:
        # a failed attempt to Snakemake, which resubmits it (the rule's retries)
        train.log.info("%s; the next attempt continues", stopped)
        logs.finish(OUT_OF_TIME_EXIT)
    logs.finish()
