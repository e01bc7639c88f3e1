rule probe:
    """Linear probe on frozen embeddings of the model's own training set, tested on the
    public test split (SPEC §4): the train-test gap beside the déjà vu score."""
    input:
        checkpoint=CHECKPOINT,
        train=EMBED_STORE.replace("{part}", "train"),
        test=EMBED_STORE.replace("{part}", "public_test"),
        split=SPLIT,
    output:
        json=PROBE,
    params:
        embedding=config["probe"]["embedding"],
        weight_decay=config["probe"]["weight_decay"],
        steps=config["probe"]["steps"],
        meta=lambda wc: {"method": wc.method, "backbone": wc.backbone,
                         "train_size": int(wc.size), "seed": int(wc.seed),
                         "subset": wc.subset, "epoch": int(wc.epoch)},
    log:
        log_path("probe", f"{MODEL}/epoch{{epoch}}"),
    benchmark:
        bench_path("probe", f"{MODEL}/epoch{{epoch}}")
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    script:
        "../scripts/probe.py"
