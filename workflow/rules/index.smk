rule index:
    input:
        store=EMBED_STORE.replace("{part}", "public"),
        checkpoint=CHECKPOINT,
    output:
        index=INDEX,
    params:
        embedding=wildcard("embedding"),
        metric=config["knn"]["metric"],
    log:
        log_path("index", f"{MODEL}/epoch{{epoch}}/{{embedding}}"),
    benchmark:
        bench_path("index", f"{MODEL}/epoch{{epoch}}/{{embedding}}")
    resources:
        mem_mb=sized(index_memory),  # the flat index holds every public embedding
        runtime=30,
    conda:
        ENV
    script:
        "../scripts/index.py"
