# RCDM (definitions §7): a diffusion decoder per SSL model, trained on the public set X from the
# model's stored public embeddings; then samples for the attacked images the score stage
# ranks most confident, decoded with the target's and the reference's decoder.

RCDM_OPTIONS = {key: config["rcdm"][key] for key in (
    "resolution", "width", "channel_mult", "layers_per_block", "attention", "timesteps",
    "schedule", "steps", "batch_size", "lr", "warmup_steps", "ema", "flip", "checkpoint_every", "seed")}


rule decoder_train:
    priority: CRITICAL_PATH['decoder_train']
    input:
        checkpoint=CHECKPOINT,
        public=EMBED_STORE.replace("{part}", "public"),
        images=DATASET_IMAGES,
        split=SPLIT,
    output:
        decoder=DECODER,
    params:
        **RCDM_OPTIONS,
        device=device_for(config["rcdm"]["gpus"]),
        resume_dir=filled(f"{R}/rcdm/{MODEL}/epoch{{epoch}}/resume"),
    # a job stopped at rcdm.max_runtime is resubmitted and continues from its saved state
    retries: continuations("rcdm")
    log:
        log_path("decoder_train", f"{MODEL}/epoch{{epoch}}"),
    benchmark:
        bench_path("decoder_train", f"{MODEL}/epoch{{epoch}}")
    resources:
        mem_mb=sized(decoder_train_memory),
        runtime=decoder_train_runtime,
        gpu=config["rcdm"]["gpus"],
    conda:
        ENV
    script:
        "../scripts/decoder_train.py"


rule decoder_sample:
    priority: CRITICAL_PATH['decoder_sample']
    input:
        **{f"decoder_{s}": p for s, p in pair(DECODER).items()},
        **{f"checkpoint_{s}": p for s, p in pair(CHECKPOINT).items()},
        **{f"public_{s}": p for s, p in pair(EMBED_STORE.replace("{part}", "public")).items()},
        **{f"knn_{s}": p for s, p in pair(KNN).items()},
        images=DATASET_IMAGES,
        split=SPLIT,
        crops=CROPS_STORE,
    output:
        images=directory(RCDM_SAMPLES),
        table=RCDM_TABLE,
        json=RCDM_QUALITY,
    params:
        embedding=wildcard("embedding"),
        k=wildcard("k", int),
        p=config["score"]["p"],
        examples=config["rcdm"]["examples"],
        samples=config["rcdm"]["samples"],
        sample_steps=config["rcdm"]["sample_steps"],
        self_images=config["rcdm"]["self_images"],
        seed=config["rcdm"]["seed"],
        side=config["crop"]["side"],
        metric=config["knn"]["metric"],
        device=device_for(config["rcdm"]["gpus"]),
        meta=lambda wc: run_of(wc, crop_mode=wc.crop, embedding=wc.embedding, k=int(wc.k)),
    log:
        log_path("decoder_sample", f"{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}"),
    benchmark:
        bench_path("decoder_sample", f"{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}")
    resources:
        mem_mb=sized(decoder_sample_memory),
        runtime=sized(decoder_sample_runtime),
        gpu=config["rcdm"]["gpus"],
    conda:
        ENV
    script:
        "../scripts/decoder_sample.py"
