rule score:
    input:
        knn_a=KNN.replace("{subset}", "A"),
        knn_b=KNN.replace("{subset}", "B"),
    output:
        json=SCORE,
        curves=SCORE_CURVES,
    params:
        epoch=lambda wc: int(wc.epoch),
        p=config["score"]["p"],
        p_grid=config["score"]["p_grid"],
        n_boot=config["score"]["bootstrap"],
        seed=config["score"]["seed"],
        split_heldout=config["score"]["split_heldout"],
        combination=lambda wc: {
            "dataset": config["dataset"]["name"],
            "method": wc.method,
            "backbone": wc.backbone,
            "train_size": int(wc.size),
            "seed": int(wc.seed),
            "embedding": wc.embedding,
            "k": int(wc.k),
            "crop_mode": wc.crop,
        },
    log:
        log_path("score", f"{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}"),
    benchmark:
        bench_path("score", f"{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}")
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/score.py"
