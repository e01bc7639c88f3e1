rule correlation:
    """A correlation classifier (definitions §5): the class from the background crop alone, trained
    on the crops of set {subset}'s annotated images; it stands in for the reference model
    when the other set is attacked."""
    priority: CRITICAL_PATH['correlation']
    input:
        unpack(correlation_tags),
        crops=CROPS_STORE,
        table=CROPS_TABLE,
        split=SPLIT,
    output:
        predictions=f"{CORRELATION}.parquet",
        model=f"{CORRELATION}.pt",
    params:
        classifier=wildcard("classifier"),
        trained_on=wildcard("subset"),
        train_on=config["onemodel"]["train_on"],
        smoothing=lambda wc: (config["onemodel"]["smoothing"]
                              if wc.classifier == "naive_bayes" else None),
        # sorted: a config file rewritten in another key order is the same setting
        resnet=lambda wc: (dict(sorted(config["onemodel"]["resnet"].items()))
                           if wc.classifier == "resnet" else {}),
        device=device_for(config["onemodel"]["gpus"]),
        resume_dir=filled(f"{CORRELATION}.resume"),
    # a ResNet job stopped at onemodel.max_runtime is resubmitted and continues from its
    # saved state
    retries: continuations("onemodel")
    threads: 1
    log:
        log_path("correlation", "n{size}/{crop}/{classifier}-{subset}"),
    benchmark:
        bench_path("correlation", "n{size}/{crop}/{classifier}-{subset}")
    resources:
        mem_mb=sized(correlation_memory),
        runtime=limited_runtime("onemodel") or planned(correlation_runtime,
                                                       config["onemodel"]["runtime"]),
        gpu=config["onemodel"]["gpus"],
    conda:
        ENV
    script:
        "../scripts/correlation.py"


rule onemodel:
    """The one-model test of one model (pair), epoch, crop, embedding, k and classifier."""
    input:
        unpack(onemodel_inputs),
    output:
        json=f"{ONEMODEL}.json",
        samples=f"{ONEMODEL}.samples.parquet",
        curves=f"{ONEMODEL}.curves.parquet",
    params:
        epoch=wildcard("epoch", int),
        classifier=wildcard("classifier"),
        **SCORING,
        combination=combination,
    log:
        log_path("onemodel", f"{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}-{{classifier}}"),
    benchmark:
        bench_path("onemodel", f"{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}-{{classifier}}")
    resources:
        mem_mb=sized(onemodel_memory),
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/onemodel.py"
