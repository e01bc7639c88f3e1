rule import_model:
    """A model trained elsewhere, in dejavu's checkpoint format: its weights loaded
    weights-only into the named architecture, every key accounted for."""
    input:
        source=lambda wc: external_model(wc)["checkpoint"],
    output:
        checkpoint=CHECKPOINT,
    wildcard_constraints:
        method=EXTERNAL,
        subset="A",
    params:
        model=lambda wc: {key: external_model(wc)[key] for key in dejavu.config.IMPORT_SETTINGS},
        epoch=wildcard("epoch", int),
        image_size=config["crop"]["side"],
    log:
        log_path("import_model", f"{MODEL}/epoch{{epoch}}"),
    benchmark:
        bench_path("import_model", f"{MODEL}/epoch{{epoch}}")
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/import_model.py"
