"""What `config/imagenet.yaml` (with overlays: a paper figure's) asks a cluster for, job by
job: count, memory, CPUs, GPUs and run time per rule, and the GPU-hours requested. Job counts, threads, GPUs and constant run times come from a dry run of the real
workflow (on a tiny ImageNet-shaped tree standing in for the dataset); memory and the
run times that are formulas of the data from `dejavu/resources.py` at ImageNet-1k's sizes
below (a dry run cannot know them: its inputs do not exist yet).

    python bench/project.py            # about 15 s
    python bench/project.py --overlay config/paper/recipes.yaml --overlay config/paper/sizes.yaml
    python bench/project.py --rehearsal runs/rehearsal

GPU-hours requested: per rule, its jobs x GPUs x run time (a training job's whole training,
however many continuation jobs it takes), each job at the largest train size and the first
backbone of the config -- an upper bound where sizes or backbones are swept. Run times carry
the planning factor resources.SAFETY (3): the work itself is about a third.

With `--rehearsal`, a finished run of `python bench/rehearsal.py --keep DIR`: beside each
rule's mem_mb, the peak its jobs reached in the rehearsal, which has ImageNet's rows and
classes (1.28M images, 600,000 attacked crops, k = 100) at 16 px with a width-4 model: for
the stages whose memory follows the rows (split, score, onemodel, and the per-crop terms of
knn and correlation) a measured check of the formula; for the others (models, pixels) a
floor.

Sizes assumed (ImageNet-1k's training set): 1,281,167 images, 544,546 of them with boxes;
A and B take 300 boxed images per class each, the public test split 50 per class, the public
set X the rest.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from scratch import REPO, copy_workflow

sys.path.insert(0, str(REPO))

from dejavu import resources as res  # noqa: E402
from dejavu import runtime as rt  # noqa: E402
from dejavu.config import knn_backend  # noqa: E402
from dejavu.data.crops import BLOCK_ROWS  # noqa: E402

IMAGES, CLASSES = 1_281_167, 1000


def config(overlays: list[str] = ()) -> dict:
    """config.yaml under config/imagenet.yaml and `overlays`, merged key by key as
    Snakemake merges config files, with the schema's defaults filled in."""
    from dejavu.config import merged, validate
    out = yaml.safe_load((REPO / "config.yaml").read_text())
    for path in [REPO / "config" / "imagenet.yaml", *(REPO / o for o in overlays)]:
        out = merged(out, yaml.safe_load(Path(path).read_text()))
    validate(out, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return out


def memory(c: dict) -> dict[str, int]:
    """mem_mb per rule at ImageNet-1k's sizes."""
    npc, side = max(c["split"]["npc"]), c["crop"]["side"]
    n_set, n_test = npc * CLASSES, c["split"]["public_test_per_class"] * CLASSES
    n_public = IMAGES - 2 * n_set - n_test
    canvas, loader = c["dataset"]["image_size"], c["train"]["loader"]
    backbone, width, head = c["model"]["backbones"][0], c["model"]["width"], c["model"]["projector"]
    features = res.backbone_size(backbone, width)[1]
    dims = {"backbone": features, "projector": head[-1] if head else features}
    largest = max(dims.values())
    batch = res.batch_rows(c["embed"]["batch_size"])
    dtype_bytes = res.dtype_bytes(c["embed"]["dtype"])
    processes = c["train"]["processes"] or max(1, c["train"]["gpus"])
    trained = res.train(n_images=n_set, side=side, processes=processes,
                        batch_size=c["train"]["batch_size"], backbone=backbone, width=width,
                        projector=head, on_cpu=c["train"]["gpus"] == 0,
                        small_stem=c["model"]["small_stem"], canvas=canvas,
                        **loader)["mem_mb"]
    combos = (len(c["onemodel"]["classifiers"]) * len(c["knn"]["embeddings"])
              * len(c["knn"]["k"]) * len(c["crop"]["modes"])) if c["onemodel"]["enabled"] else 0
    samples = (combos + bool(c["sslmem"]["enabled"])) * 2 * n_set  # per-sample table rows
    return {
        "summary": res.summary(n_samples=samples),
        "report": res.report(n_samples=samples),
        "split": res.split(n_rows=IMAGES),
        "score": res.score(n_crops=2 * n_set),
        "onemodel": res.onemodel(n_crops=2 * n_set),
        "train": trained, "snapshot": trained,
        "crops": res.crops(n_attacked=2 * n_set, canvas=canvas, side=side,
                           block_rows=BLOCK_ROWS),
        "embed": res.embed(batch_size=batch, canvas=canvas, side=side,
                           shard_rows=c["embed"]["shard_rows"], dims=sum(dims.values()),
                           dtype_bytes=dtype_bytes, table_rows=IMAGES),
        "index": res.knn(n_public=n_public, n_queries=0, dims=largest, k=0),
        "knn": res.knn(n_public=n_public, n_queries=2 * n_set, dims=largest,
                       k=max(c["knn"]["k"]), flat_index=knn_backend(c) == "faiss"),
        "probe": res.probe(n_train=n_set, n_test=n_test,
                           dims=dims[c["probe"]["embedding"]]),
        "sslmem": res.sslmem(n_scored=2 * n_set, side=side, batch_size=batch,
                             views=c["sslmem"]["views"]),
        "correlation": res.correlation(n_train=n_set, n_crops=2 * n_set, side=side,
                                       classes=CLASSES),
        "decoder_train": res.decoder_train(n_public=n_public,
                                           resolution=c["rcdm"]["resolution"],
                                           cond_dims=sum(dims.values()),
                                           cond_bytes=dtype_bytes),
        "decoder_sample": res.decoder_sample(n_public=n_public,
                                             dims=dims[c["rcdm"]["embedding"]]),
    }


def runtimes(c: dict) -> dict[str, int]:
    """Run time (minutes) per rule at ImageNet-1k's sizes, where it is a formula of them
    (`dejavu/runtime.py`; the slowest job of each rule)."""
    npc, side = max(c["split"]["npc"]), c["crop"]["side"]
    n_set, n_test = npc * CLASSES, c["split"]["public_test_per_class"] * CLASSES
    n_public = IMAGES - 2 * n_set - n_test
    model, rcdm, net = c["model"], c["rcdm"], c["onemodel"]["resnet"]
    backbone, head = model["backbones"][0], model["projector"]
    forward = rt.forward_macs(backbone, model["width"], side, head,
                               small_stem=model["small_stem"], patch_size=model["patch_size"])
    features = res.backbone_size(backbone, model["width"])[1]
    largest = max(features, head[-1] if head else features)
    processes = c["train"]["processes"] or max(1, c["train"]["gpus"])
    unet = rt.unet_macs(rcdm["resolution"], [rcdm["width"] * m for m in rcdm["channel_mult"]],
                         rcdm["layers_per_block"])
    gpus = {key: c[key]["gpus"] for key in ("train", "embed", "knn", "sslmem", "rcdm",
                                             "onemodel")}
    return {
        "train": rt.limited_minutes(c["train"]["max_runtime"]) or rt.train_minutes(
            epochs=c["train"]["epochs"], n_images=n_set, forward=forward, gpus=gpus["train"],
            processes=processes),
        "snapshot": rt.train_minutes(epochs=c["train"]["state_every"], n_images=n_set,
                                      forward=forward, gpus=gpus["train"],
                                      processes=processes),
        "embed": rt.embed_minutes(rows=-(-n_public // c["embed"]["jobs"]), forward=forward,
                                   gpus=gpus["embed"]),
        "knn": rt.knn_minutes(n_public=n_public, n_queries=2 * n_set, dims=largest,
                               gpus=gpus["knn"] if knn_backend(c) == "torch" else 0),
        "probe": rt.probe_minutes(n_train=n_set, n_test=n_test, n_public=n_public,
                                   forward=forward, dims=features, classes=CLASSES,
                                   steps=c["probe"]["steps"], gpus=gpus["embed"]),
        "sslmem": rt.sslmem_minutes(n_scored=2 * n_set, views=c["sslmem"]["views"],
                                     forward=forward, gpus=gpus["sslmem"]),
        "correlation": rt.correlation_minutes(
            n_train=n_set, n_crops=2 * n_set, epochs=net["epochs"], gpus=gpus["onemodel"],
            forward=rt.resnet_macs(f"resnet{net['depth']}", side, net["small_stem"],
                                    net["width"])),
        "decoder_train": (rt.limited_minutes(rcdm["max_runtime"]) or rcdm["runtime"]
                          or rt.decoder_train_minutes(steps=rcdm["steps"],
                                                       batch_size=rcdm["batch_size"],
                                                       forward=unet, gpus=gpus["rcdm"])),
        "decoder_sample": rt.decoder_sample_minutes(
            examples=rcdm["examples"], self_images=rcdm["self_images"], samples=rcdm["samples"],
            sample_steps=rcdm["sample_steps"], forward=unet, gpus=gpus["rcdm"]),
    }


def whole_training(c: dict) -> int:
    """Minutes of a model's whole training (the train rule's runtime is one continuation
    job's where train.max_runtime is set)."""
    model, npc = c["model"], max(c["split"]["npc"])
    forward = rt.forward_macs(model["backbones"][0], model["width"], c["crop"]["side"],
                               model["projector"], small_stem=model["small_stem"],
                               patch_size=model["patch_size"])
    return rt.train_minutes(epochs=c["train"]["epochs"], n_images=npc * CLASSES,
                             forward=forward, gpus=c["train"]["gpus"],
                             processes=c["train"]["processes"] or max(1, c["train"]["gpus"]))


def whole_decoder_training(c: dict) -> int:
    """Minutes of a decoder's whole training (rcdm.max_runtime splits it into jobs)."""
    rcdm = c["rcdm"]
    unet = rt.unet_macs(rcdm["resolution"], [rcdm["width"] * m for m in rcdm["channel_mult"]],
                         rcdm["layers_per_block"])
    return rcdm["runtime"] or rt.decoder_train_minutes(
        steps=rcdm["steps"], batch_size=rcdm["batch_size"], forward=unet, gpus=rcdm["gpus"])


def gpu_hours(counts: dict[str, int], settings: dict, minutes: dict, c: dict) -> dict:
    """GPU-hours requested per rule: jobs x GPUs x minutes (a model's or a decoder's
    training: the whole of it, over all its continuation jobs)."""
    whole = {"train": whole_training, "decoder_train": whole_decoder_training}
    hours = {}
    for rule, jobs in counts.items():
        gpus = int(settings[rule].get("gpu", 0))
        span = whole[rule](c) if rule in whole else minutes.get(
            rule, int(settings[rule].get("runtime", 0)))
        if gpus:
            hours[rule] = jobs * gpus * span / 60
    return hours


def dry_run(overlays: list[str] = ()) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """Jobs per rule, and each rule's threads, GPUs and run time, from `snakemake -n`."""
    from dejavu.data.testing import write_imagenet_tree
    with tempfile.TemporaryDirectory() as tmp:
        work = copy_workflow(Path(tmp) / "w")
        tree = write_imagenet_tree(Path(tmp) / "tree", classes=2, per_class=4)
        (work / "tree.yaml").write_text(yaml.safe_dump({"dataset": {
            "root": str(tree["train"]), "annotations": str(tree["annotations"])}}))
        # --cores: a dry run caps threads at this machine's cores, a cluster does not
        out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1024",
                              "--configfile", "config/imagenet.yaml", *overlays,
                              "tree.yaml"], cwd=work, check=True,
                             capture_output=True, text=True).stdout
    table = out.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    counts = {rule: int(n) for rule, n in (line.split() for line in table if line.strip())
              if rule not in ("all", "total")}
    settings = {}
    for job in re.split(r"^(?=(?:local)?rule \w+:)", out, flags=re.M)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", job).group(1)
        threads = re.search(r"^\s+threads: (\d+)", job, re.M)
        found = dict(re.findall(r"\b(runtime|gpu)=(\d+)", job))
        settings.setdefault(rule, {**found, "threads": threads.group(1) if threads else "1"})
    return counts, settings


def rehearsal_peaks(work: Path) -> dict[str, float]:
    """The largest peak RSS (MB) of each rule in a finished rehearsal."""
    from rehearsal import jobs
    return jobs(work).groupby("rule")["peak_mb"].max().to_dict()


def main() -> None:
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rehearsal", type=Path, help="a finished bench/rehearsal.py run")
    parser.add_argument("--overlay", action="append", default=[],
                        help="a config file layered over config/imagenet.yaml (repeatable)")
    args = parser.parse_args()
    c = config(args.overlay)
    mem, minutes = memory(c), runtimes(c)
    counts, settings = dry_run(args.overlay)
    peaks = rehearsal_peaks(args.rehearsal) if args.rehearsal else {}
    print(" + ".join(["config/imagenet.yaml", *args.overlay])
          + f" at ImageNet-1k's sizes ({IMAGES:,} images; "
          f"A and B {max(c['split']['npc'])} per class)")
    print(f"{'rule':16s} {'jobs':>6s} {'mem_mb':>8s} {'CPUs':>5s} {'GPUs':>5s} {'runtime':>8s}"
          + (f" {'rehearsal peak MB':>18s}" if peaks else ""))
    for rule in sorted(counts, key=lambda r: -mem.get(r, 0)):
        s = settings[rule]
        peak = f" {peaks[rule]:18.0f}" if rule in peaks else (" " * 19 if peaks else "")
        print(f"{rule:16s} {counts[rule]:6d} {mem.get(rule, 0) or '':>8} "
              f"{s.get('threads', '1'):>5s} {s.get('gpu', '0'):>5s} "
              f"{minutes.get(rule, s.get('runtime', '?')):>8}{peak}")
    print(f"{'total':16s} {sum(counts.values()):6d}   (mem_mb blank: the rule's constant, "
          f"see workflow/rules)")
    hours = gpu_hours(counts, settings, minutes, c)
    print("GPU-hours requested: " + ", ".join(f"{rule} {h:,.0f}" for rule, h in
                                             sorted(hours.items(), key=lambda kv: -kv[1]))
          + f"; total {sum(hours.values()):,.0f}")


if __name__ == "__main__":
    main()
