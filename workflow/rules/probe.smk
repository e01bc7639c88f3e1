rule probe:
    """Linear probe on frozen embeddings of the model's own training set, tested on the
    public test split (definitions §4): the train-test gap beside the déjà vu score. The job embeds
    both sets itself (nothing else reads those embeddings), and also scores the public test
    images by their `probe.knn_k` nearest public images (utility, definitions §10)."""
    input:
        checkpoint=CHECKPOINT,
        images=DATASET_IMAGES,
        split=SPLIT,
        public=EMBED_STORE.replace("{part}", "public"),
    output:
        json=PROBE,
        correct=PROBE.removesuffix(".json") + ".correct.parquet",
    params:
        embedding=config["probe"]["embedding"],
        weight_decay=config["probe"]["weight_decay"],
        steps=config["probe"]["steps"],
        subset=lambda wc: dejavu.data.removal.base(wc.subset),  # removal runs: probed on all of A
        side=config["crop"]["side"],
        batch_size=config["embed"]["batch_size"],
        device=device_for(config["embed"]["gpus"]),
        meta=lambda wc: run_of(wc, subset=wc.subset),
        k=config["probe"]["knn_k"],
        metric=config["knn"]["metric"],
    log:
        log_path("probe", f"{MODEL}/epoch{{epoch}}"),
    benchmark:
        bench_path("probe", f"{MODEL}/epoch{{epoch}}")
    resources:
        mem_mb=sized(probe_memory),
        runtime=sized(probe_runtime),
        gpu=config["embed"]["gpus"],
    conda:
        ENV
    script:
        "../scripts/probe.py"
