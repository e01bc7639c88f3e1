# The vision-language test (definitions §14; dejavu/vlm/): the captioned records, their
# split, CLIP-style models of A and B, every record's embeddings, the test per epoch (0: the
# untrained control) and results/vlm_summary.csv.

rule vlm_data:
    input:
        vlm_source()[1],
    output:
        directory(VLM_STORE),
    params:
        **vlm_source()[0],
    log:
        log_path("vlm_data"),
    benchmark:
        bench_path("vlm_data")
    resources:
        mem_mb=vlm_memory("data"),
        runtime=vlm_runtime("data"),
    conda:
        ENV
    script:
        "../scripts/vlm_data.py"


rule vlm_split:
    input:
        vlm_declared(),
        store=VLM_STORE,
    output:
        VLM_SPLIT,
    params:
        per_set=VC["per_set"],
        seed=VC["split_seed"],
        sets=VC["sets"],
    log:
        log_path("vlm_split"),
    benchmark:
        bench_path("vlm_split")
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/vlm_split.py"


rule vlm_train:
    input:
        store=VLM_STORE,
        split=VLM_SPLIT,
    output:
        models=[VLM_MODEL.replace("{epoch}", str(e)) for e in VLM_EPOCHS],
    wildcard_constraints:
        subset="A|B",
    params:
        subset=wildcard("subset"),
        seed=wildcard("seed", int),
        image_size=VC["data"]["image_size"],
        tested=VLM_EPOCHS,
        resume_dir=filled(f"{VLM}/models/{VLM_RUN}/{{subset}}/resume"),
        device=device_for(VC["gpus"]),
        processes=VLM_PROCESSES,
        training=vlm_training,
    threads: VLM_PROCESSES
    # a job stopped at vlm.train.max_runtime is resubmitted and continues from its state
    retries: continuations("vlm.train")
    log:
        log_path("vlm_train", f"{VLM_RUN}/{{subset}}"),
    benchmark:
        bench_path("vlm_train", f"{VLM_RUN}/{{subset}}")
    resources:
        mem_mb=vlm_memory("train"),
        runtime=vlm_runtime("train"),
        gpu=VC["gpus"],
    conda:
        ENV
    script:
        "../scripts/vlm_train.py"


rule vlm_embed:
    input:
        store=VLM_STORE,
        checkpoint=VLM_MODEL,
    output:
        directory(VLM_EMBED),
    wildcard_constraints:
        subset="A|B",
    params:
        **VC["embed"],
        device=device_for(VC["gpus"]),
    threads: 1
    log:
        log_path("vlm_embed", f"{VLM_RUN}/{{subset}}/epoch{{epoch}}"),
    benchmark:
        bench_path("vlm_embed", f"{VLM_RUN}/{{subset}}/epoch{{epoch}}")
    resources:
        mem_mb=vlm_memory("embed"),
        runtime=vlm_runtime("embed"),
        gpu=VC["gpus"],
    conda:
        ENV
    script:
        "../scripts/vlm_embed.py"


rule vlm_reference:
    input:
        store=VLM_STORE,
        split=VLM_SPLIT,
    output:
        directory(VLM_REFERENCE),
    params:
        reference=VC["onemodel"]["reference"],
        dim=VC["onemodel"]["dim"],
        path=VC["onemodel"]["path"],
        chunk_rows=VC["embed"]["chunk_rows"],
        device=device_for(VC["gpus"]),
    log:
        log_path("vlm_reference"),
    benchmark:
        bench_path("vlm_reference")
    resources:
        mem_mb=vlm_memory("reference"),
        runtime=60,
    conda:
        ENV
    script:
        "../scripts/vlm_reference.py"


rule vlm_test:
    input:
        unpack(lambda wc: {"g": VLM_REFERENCE} if VC["onemodel"]["enabled"] else {}),
        store=VLM_STORE,
        split=VLM_SPLIT,
        a=VLM_EMBED.replace("{subset}", "A"),
        b=VLM_EMBED.replace("{subset}", "B"),
    output:
        VLM_TEST,
    params:
        **VLM_TEST_PARAMS,
        meta=lambda wc: {"model": vlm_of(wc)["train"]["method"], "variant": wc.variant,
                         "seed": int(wc.seed), "epoch": int(wc.epoch)},
    log:
        log_path("vlm_test", f"{VLM_RUN}/epoch{{epoch}}"),
    benchmark:
        bench_path("vlm_test", f"{VLM_RUN}/epoch{{epoch}}")
    resources:
        mem_mb=vlm_memory("test"),
        runtime=vlm_runtime("test"),
        gpu=VC["gpus"],
    conda:
        ENV
    script:
        "../scripts/vlm_test.py"


rule vlm_summary:
    input:
        vlm_tests(),
    output:
        VLM_SUMMARY,
    log:
        log_path("vlm_summary"),
    benchmark:
        bench_path("vlm_summary")
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/vlm_summary.py"
