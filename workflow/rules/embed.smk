rule embed:
    priority: embed_priority
    input:
        unpack(embed_source),
        checkpoint=CHECKPOINT,
    output:
        marker=temp(f"{R}/embed/{MODEL}/epoch{{epoch}}/{{part}}.shards/{{job}}.json"),
    params:
        store=filled(EMBED_STORE),
        part=wildcard("part"),
        job=wildcard("job", int),
        jobs=config["embed"]["jobs"],
        side=config["crop"]["side"],
        shard_rows=config["embed"]["shard_rows"],
        chunk_rows=config["embed"]["chunk_rows"],
        batch_size=config["embed"]["batch_size"],
        dtype=config["embed"]["dtype"],
        device=device_for(config["embed"]["gpus"]),
        inner=EMBED_ARRAYS[2:],  # the intermediate layers knn.embeddings asks for
    log:
        log_path("embed", f"{MODEL}/epoch{{epoch}}/{{part}}-{{job}}"),
    benchmark:
        bench_path("embed", f"{MODEL}/epoch{{epoch}}/{{part}}-{{job}}")
    resources:
        mem_mb=sized(embed_memory),
        runtime=sized(embed_runtime),
        gpu=config["embed"]["gpus"],
    conda:
        ENV
    script:
        "../scripts/embed.py"


rule embed_finalize:
    priority: embed_priority
    input:
        checkpoint=CHECKPOINT,
        markers=expand(
            f"{R}/embed/{MODEL}/epoch{{epoch}}/{{part}}.shards/{{job}}.json",
            job=range(config["embed"]["jobs"]),
            allow_missing=True,
        ),
    output:
        store=directory(EMBED_STORE),
    log:
        log_path("embed_finalize", f"{MODEL}/epoch{{epoch}}/{{part}}"),
    benchmark:
        bench_path("embed_finalize", f"{MODEL}/epoch{{epoch}}/{{part}}")
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/embed_finalize.py"
