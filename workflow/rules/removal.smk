# The SSLMem paper's removal experiment (definitions §12): each target model A retrained
# without the m images it memorizes most, or without m random ones (subsets A-memorized<m>,
# A-random<m>: models like A and B, trained and probed by the rules of train.smk and
# probe.smk), and the table of their downstream accuracy.


rule removal_list:
    """The ids a removal run leaves out of set A: the m of highest SSLMem score under the
    finished run's target A, or m random ones."""
    input:
        sslmem=lambda wc: SSLMEM.format(method=wc.method, backbone=wc.backbone,
                                        variant=wc.variant, size=wc.size, seed=wc.seed,
                                        epoch=train_epochs(wc.variant)[-1]),
    output:
        REMOVED,
    wildcard_constraints:
        kind="|".join(dejavu.data.removal.KINDS),
        m=r"[1-9]\d*",
    params:
        kind=wildcard("kind"),
        m=wildcard("m", int),
        seed=wildcard("seed", int),
    log:
        log_path("removal_list", f"{RUN}/{{kind}}{{m}}"),
    benchmark:
        bench_path("removal_list", f"{RUN}/{{kind}}{{m}}")
    resources:
        mem_mb=1000,  # a pandas job reading one SSLMem table (per scored image, ~100 B)
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/removal_list.py"


rule removal:
    """Downstream accuracy of A and of every removal run (figures/removal.csv's rows)."""
    input:
        probes=[PROBE.format(**run) for run in removal_runs()],
    output:
        REMOVAL_TABLE,
    log:
        log_path("removal"),
    benchmark:
        bench_path("removal")
    resources:
        mem_mb=1000,  # a pandas job reading one small JSON per run
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/removal.py"
