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
        architecture=lambda wc: external_model(wc)["architecture"],
        projector=lambda wc: external_model(wc)["projector"],
        normalize=lambda wc: external_model(wc)["normalize"],
        key=lambda wc: external_model(wc)["key"],
        prefix=lambda wc: external_model(wc)["prefix"],
        epoch=lambda wc: int(wc.epoch),
        image_size=config["crop"]["side"],
        width=lambda wc: external_model(wc)["width"] or config["model"]["width"],
        small_stem=lambda wc: (config["model"]["small_stem"]
                               if external_model(wc)["small_stem"] is None
                               else external_model(wc)["small_stem"]),
        patch_size=lambda wc: external_model(wc)["patch_size"] or config["model"]["patch_size"],
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
