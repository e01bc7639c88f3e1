rule init:
    output:
        checkpoint=CHECKPOINT.replace("{epoch}", "0"),
    params:
        backbone=lambda wc: wc.backbone,
        projector_dims=config["model"]["projector"],
        width=config["model"]["width"],
        small_stem=config["model"]["small_stem"],
        seed=lambda wc: int(wc.seed),
        subset=lambda wc: wc.subset,
    log:
        log_path("init", MODEL),
    benchmark:
        bench_path("init", MODEL)
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/init.py"


rule train:
    input:
        init=CHECKPOINT.replace("{epoch}", "0"),
        images=DATASET_IMAGES,
        split=SPLIT,
    output:
        checkpoints=[CHECKPOINT.replace("{epoch}", str(e)) for e in train_epochs()],
    params:
        epochs_saved=train_epochs(),
        resume_dir=lambda wc: f"{R}/models/{MODEL}/resume".format(**wc),
        resume_every=config["train"]["resume_every"],
        method=lambda wc: wc.method,
        seed=lambda wc: int(wc.seed),
        subset=lambda wc: wc.subset,
        epochs=config["train"]["epochs"],
        checkpoints=config["train"]["checkpoints"],
        batch_size=config["train"]["batch_size"],
        lr=config["train"]["lr"],
        weight_decay=config["train"]["weight_decay"],
        warmup_epochs=config["train"]["warmup_epochs"],
        augment=config["train"]["augment"],
        loss=lambda wc: config["train"]["loss"].get(wc.method, {}),
        device=config["device"],
    threads: 1
    log:
        log_path("train", MODEL),
    benchmark:
        bench_path("train", MODEL)
    resources:
        mem_mb=8000,
        runtime=24 * 60,
    conda:
        ENV
    script:
        "../scripts/train.py"
