# The SSLMem paper's removal experiment (definitions §12): each target model A retrained
# without the m images it memorizes most, or without m random ones (subsets A-memorized<m>,
# A-random<m>: models like A and B, trained and probed by the rules of train.smk and
# probe.smk), and the table of their downstream accuracy.


rule removal_list:
    """The ids a removal run leaves out of set A: the m of highest SSLMem score under the
    finished run's target A, or m random ones."""
    input:
        sslmem=lambda wc: SSLMEM.format(method=wc.method, backbone=wc.backbone,
                                        variant=wc.variant, size=wc.size, seed=wc.seed,
                                        epoch=train_epochs(wc.variant)[-1]),
    output:
        REMOVED,
    wildcard_constraints:
        kind="|".join(dejavu.data.removal.KINDS),
        m=r"[1-9]\d*",
    params:
        kind=wildcard("kind"),
        m=wildcard("m", int),
        seed=wildcard("seed", int),
    log:
        log_path("removal_list", f"{RUN}/{{kind}}{{m}}"),
    benchmark:
        bench_path("removal_list", f"{RUN}/{{kind}}{{m}}")
    resources:
        mem_mb=1000,  # a pandas job reading one SSLMem table (per scored image, ~100 B)
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/removal_list.py"


rule downstream_probe:
    """A's and each removal run's encoder on a second dataset (removal.downstream): the
    linear probe fit on one part of its images, tested on the rest, and the k-NN accuracy."""
    input:
        checkpoint=CHECKPOINT,
        index=lambda wc: downstream_dataset(wc)["index"],
        images=lambda wc: dejavu.config.downstream_images(downstream_dataset(wc)),
    output:
        DOWNSTREAM,
    params:
        dataset=wildcard("downstream"),
        test_fraction=lambda wc: downstream_dataset(wc)["test_fraction"],
        seed=lambda wc: downstream_dataset(wc)["seed"],
        embedding=config["probe"]["embedding"],
        weight_decay=config["probe"]["weight_decay"],
        steps=config["probe"]["steps"],
        side=config["crop"]["side"],
        batch_size=config["embed"]["batch_size"],
        device=device_for(config["embed"]["gpus"]),
        meta=lambda wc: run_of(wc, subset=wc.subset),
        k=config["probe"]["knn_k"],
        metric=config["knn"]["metric"],
    log:
        log_path("downstream_probe", f"{{downstream}}/{MODEL}/epoch{{epoch}}"),
    benchmark:
        bench_path("downstream_probe", f"{{downstream}}/{MODEL}/epoch{{epoch}}")
    resources:
        mem_mb=sized(downstream_memory),
        runtime=sized(downstream_runtime),
        gpu=config["embed"]["gpus"],
    conda:
        ENV
    script:
        "../scripts/downstream_probe.py"


rule removal:
    """Downstream accuracy of A and of every removal run (figures/removal.csv's rows): on the
    public test split, and on each second dataset."""
    input:
        probes=[PROBE.format(**run) for run in removal_runs()],
        downstream=[DOWNSTREAM.format(**run, downstream=data["name"]) for run in removal_runs()
                    for data in config["removal"]["downstream"]],
    output:
        REMOVAL_TABLE,
    params:
        dataset=config["dataset"]["name"],
    log:
        log_path("removal"),
    benchmark:
        bench_path("removal")
    resources:
        mem_mb=1000,  # a pandas job reading one small JSON per run
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/removal.py"
