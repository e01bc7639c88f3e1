rule split:
    input:
        index=DATASET_INDEX,
    output:
        split=SPLIT,
        sizes=f"{R}/split/n{{size}}/sizes.csv",
    params:
        npc=wildcard("size", int),
        max_npc=max(config["split"]["npc"]),
        heldout_fraction=config["split"]["heldout_fraction"],
        attack_boxless=config["split"]["attack_boxless"],
        public_test_per_class=config["split"]["public_test_per_class"],
        seed=config["split"]["seed"],
    log:
        log_path("split", "n{size}"),
    benchmark:
        bench_path("split", "n{size}")
    resources:
        mem_mb=sized(split_memory),
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/split.py"
