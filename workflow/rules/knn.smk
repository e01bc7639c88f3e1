rule knn:
    input:
        unpack(knn_index),
        checkpoint=CHECKPOINT,
        public=EMBED_STORE.replace("{part}", "public"),
        crops=EMBED_STORE.replace("{part}", "crops-{crop}"),
        crops_table=CROPS_TABLE,
        split=SPLIT,
    output:
        knn=KNN,
    params:
        embedding=wildcard("embedding"),
        k=wildcard("k", int),
        metric=config["knn"]["metric"],
        backend=KNN_BACKEND,
        memory_mb=config["knn"]["memory_mb"],
        device=device_for(config["knn"]["gpus"]),
    log:
        log_path("knn", f"{MODEL}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}"),
    benchmark:
        bench_path("knn", f"{MODEL}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}")
    resources:
        mem_mb=sized(knn_memory),
        runtime=sized(knn_runtime),
        gpu=config["knn"]["gpus"],
    conda:
        ENV
    script:
        "../scripts/knn.py"
