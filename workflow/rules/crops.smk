rule crops:
    input:
        images=DATASET_IMAGES,
        index=DATASET_INDEX,
        split=SPLIT,
    output:
        crops=directory(CROPS_STORE),
        table=CROPS_TABLE,
    params:
        mode=wildcard("crop"),
        side=config["crop"]["side"],
        min_side=config["crop"]["min_side"],
        min_side_in=config["crop"]["min_side_in"],
        criterion=config["crop"]["criterion"],
        corner=config["crop"]["corner"],
        corner_frac=config["crop"]["corner_frac"],
    log:
        log_path("crops", "n{size}/{crop}"),
    benchmark:
        bench_path("crops", "n{size}/{crop}")
    resources:
        mem_mb=sized(crops_memory),
        runtime=30,
    conda:
        ENV
    script:
        "../scripts/crops.py"
