rule score:
    input:
        knn_a=KNN.replace("{subset}", "A"),
        knn_b=KNN.replace("{subset}", "B"),
    output:
        json=SCORE,
        curves=SCORE_CURVES,
        boot=SCORE_BOOT,
    params:
        epoch=wildcard("epoch", int),
        **SCORING,
        combination=combination,
    log:
        log_path("score", f"{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}"),
    benchmark:
        bench_path("score", f"{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}")
    resources:
        mem_mb=sized(score_memory),
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/score.py"
