rule probe:
    """Linear probe on frozen embeddings of the model's own training set, tested on the
    public test split (definitions §4): the train-test gap beside the déjà vu score. The job embeds
    both sets itself (nothing else reads those embeddings)."""
    input:
        checkpoint=CHECKPOINT,
        images=DATASET_IMAGES,
        split=SPLIT,
    output:
        json=PROBE,
    params:
        embedding=config["probe"]["embedding"],
        weight_decay=config["probe"]["weight_decay"],
        steps=config["probe"]["steps"],
        subset=lambda wc: wc.subset,
        side=config["crop"]["side"],
        batch_size=config["embed"]["batch_size"],
        device=device_for(config["embed"]["gpus"]),
        meta=lambda wc: run_of(wc, subset=wc.subset),
    log:
        log_path("probe", f"{MODEL}/epoch{{epoch}}"),
    benchmark:
        bench_path("probe", f"{MODEL}/epoch{{epoch}}")
    resources:
        mem_mb=sized(probe_memory),
        runtime=30,
        gpu=config["embed"]["gpus"],
    conda:
        ENV
    script:
        "../scripts/probe.py"
