# The vision-language test's paths, settings and the functions its rules call (resources,
# the report's inputs, the tests the summary gathers); its rules are in vlm.smk and
# vlm_external.smk.

import functools

import dejavu.vlm.resources as vlm_res

VC = config["vlm"]
VLM = f"{config['results']}/vlm/{VC['data']['source']}"
VLM_STORE = f"{VLM}/data"                                   # vlm_data: images, records
VLM_SPLIT = f"{VLM}/split.parquet"                          # vlm_split
VLM_RUN = "{variant}/s{seed}"                                 # a variant's models at a seed
VLM_MODEL = f"{VLM}/models/{VLM_RUN}/{{subset}}/epoch{{epoch}}.pt"   # vlm_train
VLM_EMBED = f"{VLM}/embed/{VLM_RUN}/{{subset}}/epoch{{epoch}}.zarr"  # vlm_embed
VLM_TEST = f"{VLM}/test/{VLM_RUN}/epoch{{epoch}}.json"      # vlm_test
VLM_REFERENCE = f"{VLM}/reference/{config['vlm']['onemodel']['reference']}.zarr"  # vlm_reference
VLM_SUMMARY = f"{config['results']}/vlm_summary.csv"        # vlm_summary
VLM_EXTERNAL = f"{VLM}/external/{(VC['external'] or {}).get('name', 'none')}"
VLM_EXTERNAL_TEST = f"{VLM_EXTERNAL}/test.json"              # vlm_external_test
VLM_EPOCHS = sorted({0, *VC["train"]["checkpoints"], VC["train"]["epochs"]})  # tested
VLM_PROCESSES = VC["train"]["processes"] or max(1, VC["gpus"])  # per training job
# the vlm section each variant trains and tests with (vlm.variants), `default` first
VLM_VARIANTS = dejavu.variants.vlm_variants(config, os.path.join(workflow.basedir, SCHEMA))


def vlm_of(wildcards) -> dict:
    """The vlm section of a job's variant (as written for a job of none: the external
    model's)."""
    return VLM_VARIANTS[wildcards.variant] if "variant" in wildcards.keys() else VC


def vlm_loss(vc: dict) -> dict:
    """A variant's loss options: its method's defaults and what it sets."""
    return {**dejavu.training.methods.info(vc["train"]["method"]).options, **vc["train"]["loss"]}


def vlm_model_size(vc: dict) -> dict:
    """What a variant's models' memory and minutes follow from (dejavu/vlm/resources.py)."""
    loss = vlm_loss(vc)
    return {**{k: vc["model"][k] for k in ("backbone", "width", "projector")},
            "side": VC["data"]["image_size"],
            "text": {k: loss[k] for k in ("context", "buckets", "text_dim", "text_depth")}}


def vlm_dim(vc: dict) -> int:
    """A variant's embedding dimension (the projector's output)."""
    return vlm_res.image_dim(vc["model"]["backbone"], vc["model"]["width"], vc["model"]["projector"])


def vlm_training(wildcards) -> dict:
    """What changes a variant's weights: its model and training settings; not how a job
    runs (processes, time limit, resume interval: changing those retrains nothing) nor
    which epochs it saves (the rule's outputs)."""
    vc = vlm_of(wildcards)
    shared = ("seeds", "loss", "processes", "max_runtime", "continuations", "resume_every",
              "checkpoints")
    return {**vc["model"], **{k: v for k, v in vc["train"].items() if k not in shared},
            "loss": vlm_loss(vc)}


def vlm_source():
    """The settings of the configured source (a change to another's reruns nothing), and
    its files as the stage's inputs."""
    data, common = VC["data"], ("source", "image_size")
    if data["source"] == "synthetic":
        keys = (*common, "records", "n_scenes", "n_objects", "seed")
    else:
        keys = (*common, "coco", "jsonl", "resize", "strict", "chunk_rows")
    params = {key: data.get(key) for key in keys}
    files = {"coco": [data["coco"].get(k) for k in ("captions", "instances")],
             "jsonl": [data.get("jsonl")]}.get(data["source"], [])
    return params, files


def vlm_count(split: str, sets: tuple[str, ...]) -> int:
    import pyarrow.parquet as pq
    return int(pq.read_table(split, columns=["set"]).to_pandas()["set"].isin(sets).sum())


def vlm_records(input) -> int:
    return dejavu.resources.stored_shape(f"{input.store}/images.zarr")[0]


def vlm_vocabulary(input) -> int:
    with open(f"{input.store}/vocabulary.csv") as f:
        return sum(1 for _ in f) - 1


VLM_SEARCH_MB = config["knn"]["memory_mb"] or 1024  # the test's torch search, per block


def vlm_memory(stage: str):
    """A VLM stage's mem_mb (dejavu/vlm/resources.py), from its inputs once they exist."""
    def formula(wildcards, input):
        if stage == "data":
            files = [p for p in input if os.path.isfile(p)]
            lines = source_images(input) if VC["data"]["source"] == "jsonl" else 0
            return vlm_res.data_mb(source=VC["data"]["source"], side=VC["data"]["image_size"],
                                   chunk_rows=VC["data"]["chunk_rows"],
                                   n_records=VC["data"]["records"], lines=lines,
                                   annotation_bytes=sum(os.path.getsize(p) for p in files))
        vc = vlm_of(wildcards)
        if stage == "train":
            return vlm_res.train_mb(n_records=vlm_records(input), vocabulary=vlm_vocabulary(input),
                                    n_set=vlm_count(input.split, (wildcards.subset,)),
                                    batch_size=vc["train"]["batch_size"], on_cpu=VC["gpus"] == 0,
                                    processes=VLM_PROCESSES, **vlm_model_size(vc))
        if stage == "reference":
            return vlm_res.reference_mb(n_records=vlm_records(input),
                                        vocabulary=vlm_vocabulary(input),
                                        dim=VC["onemodel"]["dim"],
                                        chunk_rows=VC["embed"]["chunk_rows"],
                                        model_bytes=folder_bytes(VC["onemodel"]["path"]))
        if stage == "embed":
            return vlm_res.embed_mb(n_records=vlm_records(input), vocabulary=vlm_vocabulary(input),
                                    side=VC["data"]["image_size"],
                                    batch_size=VC["embed"]["batch_size"],
                                    chunk_rows=VC["embed"]["chunk_rows"], dims=2 * vlm_dim(vc))
        return vlm_res.test_mb(n_records=vlm_records(input),
                               n_public=vlm_count(input.split, ("public",)),
                               n_scored=2 * VC["per_set"], vocabulary=vlm_vocabulary(input),
                               dim=vlm_dim(vc), k=max(VC["ks"]), keys=len(VC["ks"]) * len(VC["modes"]),
                               query_rows=VC["query_rows"], search_mb=VLM_SEARCH_MB)
    return sized(formula)


def vlm_runtime(stage: str):
    """A VLM stage's minutes (dejavu/vlm/resources.py), from its inputs once they exist."""
    def formula(wildcards, input):
        vc = vlm_of(wildcards)
        if stage == "data":
            return vlm_res.data_min(source=VC["data"]["source"], n_images=source_images(input),
                                    side=VC["data"]["image_size"])
        if stage == "train":
            return limited_runtime("vlm.train") or vlm_res.train_min(
                epochs=VC["train"]["epochs"], gpus=VC["gpus"], processes=VLM_PROCESSES,
                n_set=vlm_count(input.split, (wildcards.subset,)), **vlm_model_size(vc))
        if stage == "embed":
            return vlm_res.embed_min(n_records=vlm_records(input), gpus=VC["gpus"],
                                     **vlm_model_size(vc))
        return vlm_res.test_min(n_public=vlm_count(input.split, ("public",)), dim=vlm_dim(vc),
                                n_scored=4 * VC["per_set"], searches=len(VC["searches"]),
                                gpus=VC["gpus"])
    return sized(formula)


def source_images(input) -> int:
    """Images the records source names: the synthetic benchmark's records, a JSON-lines
    file's lines, or the image entries of a COCO captions file (its "file_name" keys)."""
    source = VC["data"]["source"]
    if source == "synthetic":
        return VC["data"]["records"]
    return occurrences(input[0], b"\n" if source == "jsonl" else b'"file_name"')


@functools.lru_cache
def occurrences(path: str, token: bytes) -> int:
    """How often `token` occurs in a file, read 16 MB at a time (a JSON-lines file of 40
    million records: seconds), once per file for the data stage's memory and minutes. A
    token split across two blocks is missed: the counts are estimates for resources."""
    with open(path, "rb") as f:
        return sum(block.count(token) for block in iter(lambda: f.read(1 << 24), b""))


def folder_bytes(path: str | None) -> int:
    """Bytes of the files under `path` (a sentence-embedding model's weights); 0 for none."""
    if not path:
        return 0
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def vlm_declared() -> list[str]:
    """The user's declared sets, an input of the split when given."""
    return [VC["sets"]] if VC["sets"] else []


def vlm_tests() -> list[str]:
    """The tests the summary gathers: of the VLMs trained here, of each variant at each
    seed and tested epoch (0, vlm.train.checkpoints, the last); or of the VLM trained
    elsewhere (vlm.external)."""
    if VC["external"]:
        return [VLM_EXTERNAL_TEST]
    return expand(VLM_TEST, variant=VLM_VARIANTS, seed=VC["train"]["seeds"], epoch=VLM_EPOCHS)


def vlm_report_inputs() -> dict:
    """What the report draws the VLM section from: the summary, the test of the default
    variant's first seed at the last epoch (its recall CCDFs and examples) and the records
    (the examples' images)."""
    if not VC["enabled"]:
        return {}
    last = (VLM_EXTERNAL_TEST if VC["external"] else
            VLM_TEST.format(variant=dejavu.variants.DEFAULT_VARIANT, seed=VC["train"]["seeds"][0],
                            epoch=VC["train"]["epochs"]))
    return {"vlm": VLM_SUMMARY, "vlm_test": last, "vlm_store": VLM_STORE}


VLM_TEST_PARAMS = {  # vlm_test's and vlm_external_test's
    **{key: VC[key] for key in ("ks", "modes", "searches", "unnamed_only", "query_rows")},
    "n_boot": VC["bootstrap"], "seed": VC["seed"], "device": device_for(VC["gpus"]),
    "reference": VC["onemodel"]["reference"] if VC["onemodel"]["enabled"] else None}


VLM_EXTERNAL_EMBED = f"{VLM_EXTERNAL}/{{subset}}.zarr"
VX = VC["external"] or {}


def external_checkpoint(wildcards) -> str:
    key = "checkpoint" if wildcards.subset == "A" else "reference_checkpoint"
    return VX[key]
