# summary.csv (definitions §9) and, apart from it, the HTML report with its figures: a figure
# that fails cannot cost the numbers.


rule summary:
    input:
        scores=score_targets(),
        boots=siblings(score_targets(), ".boot.parquet"),
        probes=probe_targets(),
        probe_correct=siblings(probe_targets(), ".correct.parquet"),
        onemodel=onemodel_targets(),
        onemodel_samples=siblings(onemodel_targets(), ".samples.parquet"),
        sslmem=sslmem_targets(),
        sslmem_layers=sslmem_targets(SSLMEM_LAYERS),
    output:
        SUMMARY,
    params:
        classifier=config["onemodel"]["classifiers"][0] if config["onemodel"]["enabled"] else None,
        first=first_combination(),
        sslmem_runs=sslmem_runs(),
        n_boot=config["score"]["bootstrap"],
        seed=config["score"]["seed"],
        labels=dejavu.variants.run_labels(config),  # recipe, sweep and sweep_value
    log:
        log_path("summary"),
    benchmark:
        bench_path("summary")
    resources:
        mem_mb=sized(summary_memory),
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/summary.py"


rule report:
    input:
        summary=SUMMARY,
        scores=score_targets(),
        curves=siblings(score_targets(), ".curves.parquet"),
        onemodel=onemodel_targets(),
        onemodel_samples=siblings(onemodel_targets(), ".samples.parquet"),
        sslmem=sslmem_targets(),
        sizes=expand(f"{R}/split/n{{size}}/sizes.csv", size=config["split"]["npc"]),
        crop_tables=expand(CROPS_TABLE, size=config["split"]["npc"], crop=config["crop"]["modes"]),
        images=DATASET_IMAGES,
        index=DATASET_INDEX,
        dataset_rejects=DATASET_REJECTS,
        **example_inputs(),
        **rcdm_targets(),
        **({"removal": REMOVAL_TABLE} if config["removal"]["enabled"] else {}),
        unitmem=unitmem_targets(),
        **vlm_report_inputs(),
    output:
        html=REPORT_HTML,
        figures=report(
            directory(f"{config['results']}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    params:
        p=config["score"]["p"],
        heldout_fraction=config["split"]["heldout_fraction"],
        first=first_combination(),
        sizes=config["split"]["npc"],
        sslmem_runs=sslmem_runs(),
        benchmarks=f"{R}/benchmarks",  # wall time per stage, as far as it is known
        provenance=config,  # printed on the page
        sweeps=dejavu.variants.sweep_specs(config),
    log:
        log_path("report"),
    benchmark:
        bench_path("report")
    resources:
        mem_mb=sized(report_memory),
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/report.py"
