rule init:
    output:
        checkpoint=CHECKPOINT.replace("{epoch}", "0"),
    params:
        backbone=lambda wc: wc.backbone,
        projector_dims=config["model"]["projector"],
        width=config["model"]["width"],
        small_stem=config["model"]["small_stem"],
        image_size=config["crop"]["side"],
        patch_size=config["model"]["patch_size"],
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
        method_module=method_module,
    output:
        checkpoints=[CHECKPOINT.replace("{epoch}", str(e)) for e in train_epochs()],
    params:
        epochs_saved=train_epochs(),
        resume_dir=lambda wc: f"{R}/models/{MODEL}/resume".format(**wc),
        resume_every=config["train"]["resume_every"],
        method=lambda wc: wc.method,
        seed=lambda wc: int(wc.seed),
        subset=lambda wc: wc.subset,
        side=config["crop"]["side"],
        method_modules=lambda wc: [method_module(wc)] if method_module(wc) else [],
        epochs=config["train"]["epochs"],
        checkpoints=config["train"]["checkpoints"],
        batch_size=config["train"]["batch_size"],
        optimizer=config["train"]["optimizer"],
        lr=config["train"]["lr"],
        final_lr_fraction=config["train"]["final_lr_fraction"],
        weight_decay=config["train"]["weight_decay"],
        momentum=config["train"]["momentum"],
        lars_eta=config["train"]["lars_eta"],
        warmup_epochs=config["train"]["warmup_epochs"],
        augment=config["train"]["augment"],
        loss=lambda wc: config["train"]["loss"].get(wc.method, {}),
        device=config["device"],
        processes=train_processes(),
    threads: 1
    log:
        log_path("train", MODEL),
    benchmark:
        bench_path("train", MODEL)
    resources:
        mem_mb=8000,
        runtime=24 * 60,
        gpu=config["train"]["gpus"],
    conda:
        ENV
    script:
        "../scripts/train.py"
