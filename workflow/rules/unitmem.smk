rule unitmem:
    """UnitMem (definitions §13) of target A and reference B on set A: how much one
    training image dominates each unit of the layers unitmem.layers lists."""
    input:
        checkpoint_a=CHECKPOINT.replace("{subset}", "A"),
        checkpoint_b=CHECKPOINT.replace("{subset}", "B"),
        images=DATASET_IMAGES,
        split=SPLIT,
    output:
        UNITMEM,
    params:
        names=config["unitmem"]["layers"],
        views=config["unitmem"]["views"],
        seed=config["unitmem"]["seed"],
        augment=lambda wc: dict(sorted({**dejavu.training.methods.info(wc.method).augment,
                                        **settings(wc)["train"]["augment"]}.items())),
        side=config["crop"]["side"],
        batch_size=dejavu.resources.batch_rows(config["embed"]["batch_size"]),
        device=device_for(config["unitmem"]["gpus"]),
    threads: 1
    log:
        log_path("unitmem", f"{RUN}/epoch{{epoch}}"),
    benchmark:
        bench_path("unitmem", f"{RUN}/epoch{{epoch}}")
    resources:
        mem_mb=sized(unitmem_memory),
        runtime=sized(unitmem_runtime),
        gpu=config["unitmem"]["gpus"],
    conda:
        ENV
    script:
        "../scripts/unitmem.py"
