# dejavu: déjà vu memorization of self-supervised vision models (Meehan et al., NeurIPS 2023).
#
# The results path scheme -- every pattern and the rule that writes it -- is written once, at
# the top of workflow/rules/common.smk; resource formulas are in workflow/rules/resources.smk
# (dejavu/resources.py); each stage's rule is in workflow/rules/<stage>.smk and its logic in
# the dejavu package (docs/architecture.md).
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
import dejavu.data.removal
import dejavu.resources
import dejavu.runtime
import dejavu.variants

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


SCHEMA = "workflow/schemas/config.schema.yaml"
dejavu.config.validate(config, os.path.join(workflow.basedir, SCHEMA))  # + its defaults
dejavu.config.check(config)  # what the schema cannot say (methods, batch, projector, ...)


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"


# wildcard patterns; crop modes, embeddings and classifiers are the schema's enums
wildcard_constraints:
    **dejavu.config.wildcard_constraints(os.path.join(workflow.basedir, SCHEMA)),


rule all:
    input:
        SUMMARY,
        REPORT_HTML,
        # the vision-language test's rows (workflow/rules/vlm.smk)
        [f"{config['results']}/vlm_summary.csv"] if config["vlm"]["enabled"] else [],


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
include: "workflow/rules/removal.smk"
include: "workflow/rules/unitmem.smk"
include: "workflow/rules/vlm_common.smk"
include: "workflow/rules/vlm.smk"

if config["vlm"]["external"]:  # a VLM trained elsewhere

    include: "workflow/rules/vlm_external.smk"

include: "workflow/rules/report.smk"
