# a few seconds for the demo's 7,000 images: in the main process on a cluster (Snakefile)
localrules:
    synth,


rule synth:
    output:
        images=directory(DATASET_IMAGES),
        index=DATASET_INDEX,
        rejects=DATASET_REJECTS,
    params:
        classes=config["dataset"]["classes"],
        images_per_class=config["dataset"]["images_per_class"],
        image_size=config["dataset"]["image_size"],
        correlation=config["dataset"]["correlation"],
        details=config["dataset"]["details"],
        detail_size=config["dataset"]["detail_size"],
        seed=config["dataset"]["seed"],
    log:
        log_path("synth"),
    benchmark:
        bench_path("synth")
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/synth.py"
