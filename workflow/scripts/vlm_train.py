from dejavu.core.logs import job
from dejavu.vlm import stages

# the time limit and the resume interval come from the config, not params: they change no
# weight, so changing them reruns nothing
with job(snakemake) as params:
    settings = snakemake.config["vlm"]["train"]
    stages.run_train(snakemake.input.store, snakemake.input.split,
                     dict(zip(params.pop("tested"), snakemake.output.models)),
                     threads=snakemake.threads, max_runtime=settings["max_runtime"],
                     resume_every=settings["resume_every"], **params.pop("training"), **params)
