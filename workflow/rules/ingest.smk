# Real datasets (dataset.name: imagenet | folder): scan the files and annotations, decode in
# shard jobs into the store format the synthetic benchmark writes, then check and finalize.
INGEST = config["dataset"]["ingest"]


rule ingest_scan:
    output:
        manifest=DATASET_MANIFEST,
        classes=DATASET_CLASSES,
        rejects=f"{DATASET}/scan_rejects.parquet",
    params:
        dataset=dataset_source(),
    log:
        log_path("ingest_scan"),
    benchmark:
        bench_path("ingest_scan")
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        ENV
    script:
        "../scripts/ingest_scan.py"


rule ingest:
    input:
        manifest=DATASET_MANIFEST,
    output:
        meta=temp(f"{DATASET}/ingest/{{job}}.parquet"),
        rejects=temp(f"{DATASET}/ingest/{{job}}.rejects.parquet"),
    params:
        images=DATASET_IMAGES,
        job=wildcard("job", int),
        jobs=INGEST["jobs"],
        image_size=config["dataset"]["image_size"],
        resize=config["dataset"]["resize"],
        exif=config["dataset"]["exif"],
        boxes_outside=config["dataset"]["boxes_outside"],
        strict=config["dataset"]["strict"],
        shard_rows=INGEST["shard_rows"],
        chunk_rows=INGEST["chunk_rows"],
    threads: INGEST["workers"]
    log:
        log_path("ingest", "{job}"),
    benchmark:
        bench_path("ingest", "{job}")
    resources:
        mem_mb=lambda wc, threads: 2000 + 1000 * threads,
        runtime=240,
    conda:
        ENV
    script:
        "../scripts/ingest.py"


rule ingest_finalize:
    input:
        manifest=DATASET_MANIFEST,
        scan_rejects=f"{DATASET}/scan_rejects.parquet",
        metas=expand(f"{DATASET}/ingest/{{job}}.parquet", job=range(INGEST["jobs"])),
        job_rejects=expand(f"{DATASET}/ingest/{{job}}.rejects.parquet", job=range(INGEST["jobs"])),
    output:
        images=directory(DATASET_IMAGES),
        index=DATASET_INDEX,
        rejects=DATASET_REJECTS,
        source=DATASET_SOURCE,
    params:
        settings=dejavu.config.dataset_settings(config),
    log:
        log_path("ingest_finalize"),
    benchmark:
        bench_path("ingest_finalize")
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        ENV
    script:
        "../scripts/ingest_finalize.py"
