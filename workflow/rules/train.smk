rule init:
    output:
        checkpoint=CHECKPOINT.replace("{epoch}", "0"),
    wildcard_constraints:
        method=TRAINED,
    params:
        backbone=wildcard("backbone"),
        projector_dims=modelled("projector"),
        width=modelled("width"),
        small_stem=modelled("small_stem"),
        image_size=config["crop"]["side"],
        patch_size=modelled("patch_size"),
        pool=modelled("pool"),
        seed=wildcard("seed", int),
        subset=wildcard("subset"),
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


# What changes the weights of a run (the same for the train and snapshot jobs).
TRAINING = dict(
    method=wildcard("method"),
    seed=wildcard("seed", int),
    subset=wildcard("subset"),
    side=config["crop"]["side"],
    method_modules=lambda wc: [method_module(wc)] if method_module(wc) else [],
    epochs=config["train"]["epochs"],
    batch_size=trained("batch_size"),
    optimizer=trained("optimizer"),
    lr=trained("lr"),
    final_lr_fraction=trained("final_lr_fraction"),
    weight_decay=trained("weight_decay"),
    momentum=trained("momentum"),
    lars_eta=trained("lars_eta"),
    warmup_epochs=trained("warmup_epochs"),
    augment=trained("augment"),
    loss=lambda wc: settings(wc)["train"]["loss"].get(wc.method, {}),
    device=device_for(config["train"]["gpus"]),
    processes=train_processes(),
)


rule train:
    priority: CRITICAL_PATH['train']
    input:
        init=CHECKPOINT.replace("{epoch}", "0"),
        images=DATASET_IMAGES,
        split=SPLIT,
        method_module=method_module,
        removed=removed_list,
    output:
        states=[STATE.replace("{epoch}", str(e)) for e in state_epochs()],
    wildcard_constraints:
        method=TRAINED,
    params:
        **TRAINING,
        epochs_saved=state_epochs(),
        resume_dir=filled(f"{R}/models/{MODEL}/resume"),
        resume_every=trained("resume_every"),
    threads: train_threads()
    # a job stopped at train.max_runtime is resubmitted and continues from its saved state
    retries: continuations("train")
    log:
        log_path("train", MODEL),
    benchmark:
        bench_path("train", MODEL)
    resources:
        mem_mb=sized(train_memory),
        runtime=sized(train_runtime),
        gpu=config["train"]["gpus"],
        nodes=1,  # its data-parallel processes share one node (and talk over localhost)
    conda:
        ENV
    script:
        "../scripts/train.py"


rule snapshot:
    """The checkpoint evaluated at one epoch, from the train stage's states: an epoch added
    to the sweep continues from the nearest state and retrains nothing else."""
    priority: CRITICAL_PATH['snapshot']
    input:
        unpack(snapshot_inputs),
        init=CHECKPOINT.replace("{epoch}", "0"),
        images=DATASET_IMAGES,
        split=SPLIT,
        method_module=method_module,
        removed=removed_list,
    output:
        checkpoint=CHECKPOINT,
    wildcard_constraints:
        method=TRAINED,
        epoch=r"[1-9]\d*",
    params:
        **TRAINING,
        epoch=wildcard("epoch", int),
    threads: train_threads()
    log:
        log_path("snapshot", f"{MODEL}/epoch{{epoch}}"),
    benchmark:
        bench_path("snapshot", f"{MODEL}/epoch{{epoch}}")
    resources:
        mem_mb=sized(train_memory),
        runtime=sized(snapshot_runtime),
        gpu=config["train"]["gpus"],
        nodes=1,
    conda:
        ENV
    script:
        "../scripts/snapshot.py"
