SYNTH_IMAGES = config["dataset"]["classes"] * config["dataset"]["images_per_class"]


rule synth:
    output:
        images=directory(DATASET_IMAGES),
        index=DATASET_INDEX,
        rejects=DATASET_REJECTS,
        source=DATASET_SOURCE,
    params:
        classes=config["dataset"]["classes"],
        images_per_class=config["dataset"]["images_per_class"],
        image_size=config["dataset"]["image_size"],
        correlation=config["dataset"]["correlation"],
        details=config["dataset"]["details"],
        detail_size=config["dataset"]["detail_size"],
        seed=config["dataset"]["seed"],
        settings=dejavu.config.dataset_settings(config),
    log:
        log_path("synth"),
    benchmark:
        bench_path("synth")
    resources:
        mem_mb=dejavu.resources.synth(n_images=SYNTH_IMAGES),
        runtime=dejavu.runtime.synth_minutes(n_images=SYNTH_IMAGES,
                                               side=config["dataset"]["image_size"]),
    conda:
        ENV
    script:
        "../scripts/synth.py"
