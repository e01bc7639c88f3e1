# A VLM trained elsewhere (vlm.external; dejavu/vlm/external.py): an OpenCLIP checkpoint
# trained on the declared set A (and, for the two-model test, one trained on B) embeds every
# record, and the tests run on its stores as on a VLM trained here.

rule vlm_external_embed:
    input:
        store=VLM_STORE,
        checkpoint=external_checkpoint,
    output:
        directory(VLM_EXTERNAL_EMBED),
    wildcard_constraints:
        subset="A|B",
    params:
        architecture=VX.get("architecture"),
        model_config=VX.get("model_config"),
        **VC["embed"],
        device=device_for(VC["gpus"]),
    threads: 1
    log:
        log_path("vlm_external_embed", "{subset}"),
    benchmark:
        bench_path("vlm_external_embed", "{subset}")
    resources:
        mem_mb=vlm_memory("embed"),
        runtime=60,
        gpu=VC["gpus"],
    conda:
        ENV
    script:
        "../scripts/vlm_external_embed.py"


rule vlm_external_test:
    input:
        unpack(lambda wc: {"g": VLM_REFERENCE} if VC["onemodel"]["enabled"] else {}),
        unpack(lambda wc: {"b": VLM_EXTERNAL_EMBED.format(subset="B")}
               if VX.get("reference_checkpoint") else {}),
        store=VLM_STORE,
        split=VLM_SPLIT,
        a=VLM_EXTERNAL_EMBED.format(subset="A"),
    output:
        VLM_EXTERNAL_TEST,
    params:
        **VLM_TEST_PARAMS,
        meta={"model": VX.get("name"), "variant": None, "seed": None, "epoch": None},
    log:
        log_path("vlm_external_test"),
    benchmark:
        bench_path("vlm_external_test")
    resources:
        mem_mb=vlm_memory("test"),
        runtime=vlm_runtime("test"),
        gpu=VC["gpus"],
    conda:
        ENV
    script:
        "../scripts/vlm_test.py"
