rule sslmem:
    """SSLMem (definitions §6) of the attacked images: how much more invariant to its training
    augmentation the target is on an image than the reference."""
    input:
        checkpoint_a=CHECKPOINT.replace("{subset}", "A"),
        checkpoint_b=CHECKPOINT.replace("{subset}", "B"),
        images=DATASET_IMAGES,
        split=SPLIT,
    output:
        table=SSLMEM,
        layers=SSLMEM_LAYERS,
    params:
        n_views=config["sslmem"]["views"],
        seed=config["sslmem"]["seed"],
        embedding=config["sslmem"]["embedding"],
        along_depth=config["knn"]["embeddings"],  # LayerMem beside the score along depth
        augment=lambda wc: dict(sorted({**dejavu.training.methods.info(wc.method).augment,
                                        **settings(wc)["train"]["augment"]}.items())),
        mask_ratio=lambda wc: dejavu.training.methods.scoring_mask(
            wc.method, settings(wc)["train"]["loss"].get(wc.method, {})),
        side=config["crop"]["side"],
        batch_size=config["embed"]["batch_size"],
        split_heldout=config["score"]["split_heldout"],
        device=device_for(config["sslmem"]["gpus"]),
    threads: 1
    log:
        log_path("sslmem", f"{RUN}/epoch{{epoch}}"),
    benchmark:
        bench_path("sslmem", f"{RUN}/epoch{{epoch}}")
    resources:
        mem_mb=sized(sslmem_memory),
        runtime=sized(sslmem_runtime),
        gpu=config["sslmem"]["gpus"],
    conda:
        ENV
    script:
        "../scripts/sslmem.py"
