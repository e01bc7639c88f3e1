rule report:
    input:
        scores=score_targets(),
        probes=probe_targets(),
        onemodel=onemodel_targets(),
        sslmem=sslmem_targets(),
        sizes=expand(f"{R}/split/n{{size}}/sizes.csv", size=config["split"]["npc"]),
        crop_tables=expand(CROPS_TABLE, size=config["split"]["npc"], crop=config["crop"]["modes"]),
        images=DATASET_IMAGES,
        index=DATASET_INDEX,
        dataset_rejects=DATASET_REJECTS,
        **example_inputs(),
        **rcdm_targets(),
    output:
        summary=SUMMARY,
        html=REPORT_HTML,
        figures=report(
            directory(f"{config['results']}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    params:
        config=config,
        benchmarks=f"{R}/benchmarks",
    log:
        log_path("report"),
    benchmark:
        bench_path("report")
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/report.py"
