# dejavu: déjà vu memorization of self-supervised vision models (Meehan et al., NeurIPS 2023).
#
# Results path scheme, R = {results}/{dataset.name}; <model> = {method}/{backbone}/{variant}/n{size}/s{seed}/{subset}
# ({variant}: default, or a name from variants:)
#   R/dataset/images.zarr, index.parquet, rejects.parquet      synth, or ingest_scan + ingest (shard jobs) +
#                                                              ingest_finalize for imagenet / folder datasets
#   R/split/n{size}/split.parquet, sizes.csv                   split: sets A, B, heldout, public, public_test
#   R/crops/n{size}/{crop}.zarr, {crop}.parquet                crops: background crops of attacked images
#   R/models/<model>/states/epoch{epoch}.pt                    train: training states every train.state_every
#   R/models/<model>/epoch{epoch}.pt                           init (epoch 0, untrained); snapshot (from a state)
#   R/embed/<model>/epoch{epoch}/{part}.zarr                   embed (shard jobs) + embed_finalize; part: public | crops-{crop}
#   R/index/<model>/epoch{epoch}/{embedding}.faiss             index: exact FAISS over the public set
#   R/knn/<model>/epoch{epoch}/{crop}-{embedding}-k{k}.parquet knn: neighbours, votes, confidence per crop
#   R/probe/<model>/epoch{epoch}.json                          probe: linear probe train / test accuracy
#   R/rcdm/<model>/epoch{epoch}/decoder.pt                     decoder_train: RCDM decoder on the public set
#   R/rcdm/{method}/{backbone}/{variant}/n{size}/s{seed}/epoch{epoch}/{crop}-{embedding}-k{k}.samples.zarr, .samples.parquet, .json
#                                                              decoder_sample: reconstructions, their judged classes, quality
#   R/correlation/n{size}/{crop}/{classifier}-{subset}.parquet, .pt   correlation: classifier trained on set {subset}'s crops
#   R/onemodel/{method}/{backbone}/{variant}/n{size}/s{seed}/epoch{epoch}/{crop}-{embedding}-k{k}-{classifier}.json
#                                                              onemodel: one-model test (+ .samples.parquet, .curves.parquet)
#   R/sslmem/{method}/{backbone}/{variant}/n{size}/s{seed}/epoch{epoch}.parquet   sslmem: per-image SSLMem
#   R/models/external/{name}/default/n{size}/s0/A/epoch{epoch}.pt      import_model: a model trained elsewhere (external:)
#   R/score/{method}/{backbone}/{variant}/n{size}/s{seed}/epoch{epoch}/{crop}-{embedding}-k{k}.json   score (+ .curves.parquet)
#   {results}/summary.csv                                      summary (definitions §9)
#   {results}/report.html, {results}/figures/                  report
#   R/logs/<rule>/..., R/benchmarks/<rule>/...                 one log and one timing file per job
from snakemake.utils import min_version

import os
import sys

# The dejavu package beside this Snakefile is the workflow's code: the Snakefile imports it,
# and so does every job (a conda environment from envs/dejavu.yaml has only its dependencies).
if os.path.isdir(os.path.join(workflow.basedir, "dejavu")):
    sys.path.insert(0, workflow.basedir)
    os.environ.update(PYTHONPATH=os.pathsep.join(
        filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])))

# OpenMP threads that wait sleep rather than spin (every job inherits it): with as many
# jobs as cores, a spinning thread holds a core that another job's thread needs, and torch's
# many short parallel regions then wait for the scheduler (a two-thread test of 19 s took
# 125 s beside two busy processes; docs/benchmarks.md). It changes no result.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import dejavu.cluster
import dejavu.config
import dejavu.core.epochs
import dejavu.core.layers
import dejavu.data.sources
import dejavu.resources

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


SCHEMA = "workflow/schemas/config.schema.yaml"
dejavu.config.validate(config, os.path.join(workflow.basedir, SCHEMA))  # + its defaults
dejavu.config.check(config)  # what the schema cannot say (methods, batch, projector, ...)


include: "workflow/rules/common.smk"


# wildcard patterns; crop modes, embeddings and classifiers are the schema's enums
wildcard_constraints:
    **dejavu.config.wildcard_constraints(os.path.join(workflow.basedir, SCHEMA)),


rule all:
    input:
        SUMMARY,
        REPORT_HTML,


# On a cluster these run in the main Snakemake process, not as jobs of their own: each is a
# few seconds of light work whatever the dataset (the synthetic set, the split table, an
# untrained model, renaming a finished embedding store, a score or one-model table from
# neighbour lists, the summary and the page; 2 GB or less at paper scale), where a cluster
# job costs a submission, a queue wait and two Snakemake starts (docs/cluster.md).
localrules:
    all,
    synth,
    split,
    init,
    embed_finalize,
    score,
    onemodel,
    summary,
    report,


onstart:
    # jobs a killed earlier run left on SLURM would write the same files; a live run's jobs
    # (another results folder, same directory) are left alone (dejavu/cluster.py)
    run_id = dejavu.cluster.slurm_run_id(workflow)
    if run_id:
        dejavu.cluster.register_run(os.getcwd(), run_id)
    orphans = dejavu.cluster.cancel_orphans(os.getcwd())
    if orphans:
        print(f"cancelled SLURM jobs left by a dead earlier run: {orphans}", file=sys.stderr)


if config["dataset"]["name"] == "synthetic":

    include: "workflow/rules/synth.smk"

else:

    include: "workflow/rules/ingest.smk"

include: "workflow/rules/split.smk"
include: "workflow/rules/crops.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/index.smk"
include: "workflow/rules/knn.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/rcdm.smk"
include: "workflow/rules/onemodel.smk"
include: "workflow/rules/external.smk"
include: "workflow/rules/sslmem.smk"
include: "workflow/rules/report.smk"
