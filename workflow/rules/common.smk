# Paths, wildcard patterns and target lists shared by the rules. Logic lives in dejavu/.

import itertools
import math

R = f"{config['results']}/{config['dataset']['name']}"
RUN = "{method}/{backbone}/{variant}/n{size}/s{seed}"
MODEL = f"{RUN}/{{subset}}"
# The dataset store: under results/ unless dataset.store puts it where configs share it
DATASET = dejavu.config.dataset_store(config)
DATASET_IMAGES = f"{DATASET}/images.zarr"
DATASET_INDEX = f"{DATASET}/index.parquet"
DATASET_REJECTS = f"{DATASET}/rejects.parquet"
DATASET_MANIFEST = f"{DATASET}/manifest.parquet"
DATASET_CLASSES = f"{DATASET}/classes.csv"
DATASET_SOURCE = f"{DATASET}/{dejavu.config.STORE_SOURCE}"  # the settings it was made from
SPLIT = f"{R}/split/n{{size}}/split.parquet"
CROPS_STORE = f"{R}/crops/n{{size}}/{{crop}}.zarr"
CROPS_TABLE = f"{R}/crops/n{{size}}/{{crop}}.parquet"
CHECKPOINT = f"{R}/models/{MODEL}/epoch{{epoch}}.pt"
STATE = f"{R}/models/{MODEL}/states/epoch{{epoch}}.pt"
EMBED_STORE = f"{R}/embed/{MODEL}/epoch{{epoch}}/{{part}}.zarr"
INDEX = f"{R}/index/{MODEL}/epoch{{epoch}}/{{embedding}}.faiss"
KNN = f"{R}/knn/{MODEL}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}.parquet"
PROBE = f"{R}/probe/{MODEL}/epoch{{epoch}}.json"
SCORE = f"{R}/score/{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}.json"
SCORE_CURVES = f"{R}/score/{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}.curves.parquet"
SCORE_BOOT = f"{R}/score/{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}.boot.parquet"
DECODER = f"{R}/rcdm/{MODEL}/epoch{{epoch}}/decoder.pt"
RCDM = f"{R}/rcdm/{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}"
RCDM_SAMPLES = f"{RCDM}.samples.zarr"
RCDM_TABLE = f"{RCDM}.samples.parquet"
RCDM_QUALITY = f"{RCDM}.json"
CORRELATION = f"{R}/correlation/n{{size}}/{{crop}}/{{classifier}}-{{subset}}"
ONEMODEL = f"{R}/onemodel/{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}-{{classifier}}"
SSLMEM = f"{R}/sslmem/{RUN}/epoch{{epoch}}.parquet"
SSLMEM_LAYERS = f"{R}/sslmem/{RUN}/epoch{{epoch}}.layers.parquet"  # LayerMem per embedding
# What every embedding store holds: the model's two outputs, and the intermediate layers
# knn.embeddings asks for (definitions §11)
EMBED_ARRAYS = [*dejavu.core.layers.OUTPUTS, *dejavu.core.layers.inner(config["knn"]["embeddings"])]
EXTERNAL = "external"  # the method name of models trained elsewhere
TRAINED = rf"(?!{EXTERNAL}/)[a-z][a-z0-9_]*"  # a method the workflow trains
SUMMARY = f"{config['results']}/summary.csv"
REPORT_HTML = f"{config['results']}/report.html"
ENV = "../../envs/dejavu.yaml"
DEFAULT = dejavu.config.DEFAULT_VARIANT
# Every variant's config by name (variants:), the config as written first as `default`
VARIANTS = dejavu.config.variants(config, os.path.join(workflow.basedir, SCHEMA))
# the methods each variant trains (an entry's methods, else every one)
VARIANT_METHODS = {name: variant["train"]["methods"] for name, variant in VARIANTS.items()}
KNN_BACKEND = dejavu.config.knn_backend(config)  # auto resolved: torch on CUDA, else faiss
# Job priorities: the longest chain first. Training holds up everything; the decoders wait
# for a checkpoint and its public embeddings, then train for minutes; the correlation
# classifiers need only crops. Ready jobs of higher priority start first, so the many short
# jobs fill the cores around this chain instead of delaying it (scheduling only: the
# results do not depend on it).
CRITICAL_PATH = {"train": 40, "snapshot": 30, "decoder_train": 30, "embed_public": 30,
                 "decoder_sample": 20, "correlation": 10}


def embed_priority(wildcards):
    return CRITICAL_PATH["embed_public"] if wildcards.part == "public" else 0


def dataset_source():
    """The dataset keys the scan of a real dataset reads (paths resolved to absolute)."""
    d = config["dataset"]
    keys = ("name", "root", "annotations", "class_list", "list", "boxes", "boxes_outside",
            "strict")
    source = {key: d.get(key) for key in keys}
    for key in ("root", "annotations", "class_list", "list", "boxes"):
        if source[key]:
            source[key] = os.path.abspath(source[key])
    if d["name"] == "imagenet" and not source["class_list"]:
        source["class_list"] = dejavu.data.sources.default_path(None, source["root"],
                                                           "LOC_synset_mapping.txt")
    return source


def device_for(gpus: int) -> str:
    """The device a job's stage runs on: config's `device`, but CUDA, with no fallback, for
    a job given GPUs under `device: auto` (a GPU asked for but unusable is an error)."""
    return "cuda" if gpus > 0 and config["device"] == "auto" else config["device"]


def log_path(rule, pattern=""):
    return f"{R}/logs/{rule}/{pattern or 'all'}.log"


def bench_path(rule, pattern=""):
    return f"{R}/benchmarks/{rule}/{pattern or 'all'}.tsv"


def trained(key: str):
    """A setting of a job: train.`key` of its variant."""
    return lambda wc: VARIANTS[wc.variant]["train"][key]


def modelled(key: str):
    """A setting of a job: model.`key` of its variant."""
    return lambda wc: VARIANTS[wc.variant]["model"][key]


def train_epochs(variant: str = DEFAULT):
    """Epochs evaluated of a variant's training (its checkpoints and the last)."""
    return dejavu.core.epochs.evaluated_epochs(config["train"]["epochs"],
                                               VARIANTS[variant]["train"]["checkpoints"])


def state_epochs():
    """Epochs whose training state the train stage keeps (train.state_every and the last)."""
    return dejavu.core.epochs.state_epochs(config["train"]["epochs"], config["train"]["state_every"])


def start_state(wildcards):
    """The state epoch a checkpoint continues from (0: none, the untrained model)."""
    return dejavu.core.epochs.start_state(int(wildcards.epoch), config["train"]["epochs"],
                                    config["train"]["state_every"])


def snapshot_inputs(wildcards):
    start = start_state(wildcards)
    return {"state": STATE.replace("{epoch}", str(start))} if start else {}


def train_runtime(wildcards, input):
    """Minutes a training job asks for: train.max_runtime with ten to start and save (a
    job that would need longer continues in the next attempt), else its formula."""
    return (limited_runtime("train")
            or training_minutes(wildcards, input, VARIANTS[wildcards.variant]["train"]["epochs"]))


def limited_runtime(section: str) -> int | None:
    """`section`.max_runtime + 10 minutes to start and save; None where it is not set."""
    return dejavu.resources.limited_minutes(config[section]["max_runtime"])


def continuations(section: str) -> int:
    """Resubmissions of a job stopped at `section`.max_runtime, by the main Snakemake
    process only: a cluster job's own Snakemake would retry it inside the allocation whose
    time ran out."""
    if not config[section]["max_runtime"] or workflow.remote_exec or workflow.subprocess_exec:
        return 0
    return config[section]["continuations"]


def train_processes():
    """Data-parallel processes per training job: train.processes, else one per GPU."""
    return config["train"]["processes"] or max(1, config["train"]["gpus"])


def method_module(wildcards):
    """The user file a method comes from, so editing it retrains (none for built-ins)."""
    return dejavu.training.methods.source_file(wildcards.method) or []


def eval_epochs(variant: str = DEFAULT):
    """Epochs of a variant that are scored; epoch 0 is the untrained control."""
    return ([0] if config["controls"]["untrained"] else []) + train_epochs(variant)


def embed_source(wildcards):
    """What an embed job reads: public images from the dataset, or crops."""
    if wildcards.part == "public":
        return {"images": DATASET_IMAGES, "table": SPLIT}
    crop = wildcards.part.removeprefix("crops-")
    return {
        "images": CROPS_STORE.replace("{crop}", crop),
        "table": CROPS_TABLE.replace("{crop}", crop),
    }


def knn_index(wildcards):
    """The FAISS index a k-NN job searches; the torch backend streams the public store."""
    return {"index": INDEX} if KNN_BACKEND == "faiss" else {}


def run_grid(of: str = DEFAULT, **more) -> dict:
    """The trained model pairs of variant `of` (method x backbone x size x seed; a variant
    may be trained for some methods only), with `more` wildcard lists, for expand()."""
    return dict(method=VARIANT_METHODS[of], backbone=config["model"]["backbones"],
                size=config["split"]["npc"], seed=config["train"]["seeds"], **more)


def attack_grid(**more) -> dict:
    """Every attack: crop mode, embedding and k, with `more`."""
    return dict(crop=config["crop"]["modes"], embedding=config["knn"]["embeddings"],
                k=config["knn"]["k"], **more)


def variant_targets(pattern: str, epochs, **more) -> list[str]:
    """`pattern` over every variant's run_grid and `more`, at the variant's `epochs(variant)`."""
    return [path for variant in VARIANTS
            for path in expand(pattern, epoch=epochs(variant),
                               **run_grid(variant, variant=[variant], **more))]


def siblings(paths: list[str], suffix: str) -> list[str]:
    """The file written beside each `.json` target (e.g. `.curves.parquet`), same order."""
    return [path.removesuffix(".json") + suffix for path in paths]


def run_of(wildcards, **more) -> dict:
    """The model pair and epoch a job's result belongs to, and `more`, for its metadata."""
    return {"method": wildcards.method, "backbone": wildcards.backbone,
            "variant": wildcards.variant, "train_size": int(wildcards.size),
            "seed": int(wildcards.seed), "epoch": int(wildcards.epoch), **more}


# the score rule's settings, which the one-model test applies the same way
SCORING = {"p": config["score"]["p"], "p_grid": config["score"]["p_grid"],
           "n_boot": config["score"]["bootstrap"], "seed": config["score"]["seed"],
           "split_heldout": config["score"]["split_heldout"]}


def combination(wildcards) -> dict:
    """What a score or one-model row says it measured: its run and attack wildcards."""
    return {"dataset": config["dataset"]["name"], "method": wildcards.method,
            "backbone": wildcards.backbone, "variant": wildcards.variant,
            "train_size": int(wildcards.size),
            "seed": int(wildcards.seed), "embedding": wildcards.embedding,
            "k": int(wildcards.k), "crop_mode": wildcards.crop}


def score_targets():
    return variant_targets(SCORE, eval_epochs, **attack_grid())


def probe_targets():
    if not config["probe"]["enabled"]:
        return []
    return variant_targets(PROBE, eval_epochs, subset=["A", "B"])


def pair(pattern):
    """The A and B versions of a per-model path."""
    return {s: pattern.replace("{subset}", s) for s in ("A", "B")}


def rcdm_targets():
    """The report's RCDM inputs: samples of every method and backbone (rcdm.runs: first --
    at the first size and seed, variant default; all -- every one) at the last epoch, with
    the first crop mode and k, neighbours in rcdm.embedding."""
    rc = config["rcdm"]
    if not rc["enabled"]:
        return {}
    first = rc["runs"] == "first"
    sizes, seeds = config["split"]["npc"], config["train"]["seeds"]
    combos = [dict(run_grid(variant, variant=[variant]), size=sizes[:1] if first else sizes,
                   seed=seeds[:1] if first else seeds, epoch=train_epochs(variant)[-1],
                   crop=config["crop"]["modes"][0], embedding=rc["embedding"],
                   k=config["knn"]["k"][0])
              for variant in ([DEFAULT] if first else VARIANTS)]
    return {key: [path for combo in combos for path in expand(pattern, **combo)]
            for key, pattern in (("rcdm_quality", RCDM_QUALITY), ("rcdm_tables", RCDM_TABLE),
                                 ("rcdm_samples", RCDM_SAMPLES))}


def example_inputs():
    """Inputs of the report's example panel: the first combination at the last epoch."""
    if not config["train"]["methods"]:
        return {}
    first = dict(
        method=config["train"]["methods"][0],
        backbone=config["model"]["backbones"][0],
        size=config["split"]["npc"][0],
        seed=config["train"]["seeds"][0],
        variant=DEFAULT,
        epoch=train_epochs()[-1],
        crop=config["crop"]["modes"][0],
        embedding=config["knn"]["embeddings"][0],
        k=config["knn"]["k"][0],
    )
    return {
        "knn_target": expand(KNN, subset="A", **first)[0],
        "knn_reference": expand(KNN, subset="B", **first)[0],
        "crops_store": expand(CROPS_STORE, **first)[0],
    }


EXTERNAL_MODELS = dejavu.config.external_models(config, os.path.join(workflow.basedir, SCHEMA))


def external_model(wildcards) -> dict:
    return EXTERNAL_MODELS[wildcards.backbone]


def external_targets(pattern: str, **wildcards) -> list[str]:
    """`pattern` for every external model (method external, backbone = its name, subset A,
    its train_size and epoch, seed 0), over the other wildcards' lists."""
    return [path for name, model in EXTERNAL_MODELS.items()
            for path in expand(pattern, method=EXTERNAL, backbone=name, variant=DEFAULT,
                               subset="A", seed=0,
                               size=model["train_size"], epoch=model["epoch"], **wildcards)]


def onemodel_targets() -> list[str]:
    om = config["onemodel"]
    if not om["enabled"]:
        return []
    trained = variant_targets(f"{ONEMODEL}.json", eval_epochs,
                              **attack_grid(classifier=om["classifiers"]))
    grid = dict(crop=config["crop"]["modes"], embedding=config["knn"]["embeddings"],
                k=config["knn"]["k"], classifier=om["classifiers"])
    return trained + external_targets(f"{ONEMODEL}.json", **grid)


def correlation_tags(wildcards) -> dict:
    """What tags a naive Bayes classifier's crops: the tags file, else the synthetic
    benchmark's own index (scene types and details)."""
    if wildcards.classifier != "naive_bayes":
        return {}
    if config["onemodel"]["tags"]:
        return {"tags": config["onemodel"]["tags"]}
    return {"index": DATASET_INDEX}


def onemodel_inputs(wildcards) -> dict:
    """The target's k-NN and the classifier trained on the other set, for the A half and,
    for models the workflow trained in pairs, the B half."""
    knn = {s: KNN.replace("{subset}", s) for s in ("A", "B")}
    classifier = {s: f"{CORRELATION}.parquet".replace("{subset}", s) for s in ("A", "B")}
    inputs = {"knn_a": knn["A"], "g_b": classifier["B"]}
    if wildcards.method != EXTERNAL:
        inputs.update(knn_b=knn["B"], g_a=classifier["A"])
    return inputs


def sslmem_runs() -> list[dict]:
    """The model pairs and epochs SSLMem scores, as the report labels them."""
    if not config["sslmem"]["enabled"]:
        return []
    return [{"method": m, "backbone": b, "variant": variant, "train_size": int(n),
             "seed": int(s), "epoch": int(e)}
            for variant in VARIANTS
            for m, b, n, s, e in itertools.product(
                *run_grid(variant, epoch=train_epochs(variant)).values())]


def sslmem_targets(pattern: str = SSLMEM) -> list[str]:
    """SSLMem's outputs (`pattern`: its table, or SSLMEM_LAYERS), in sslmem_runs' order."""
    return [pattern.format(method=r["method"], backbone=r["backbone"], variant=r["variant"],
                          size=r["train_size"], seed=r["seed"], epoch=r["epoch"])
            for r in sslmem_runs()]


def first_combination() -> dict:
    """The crop mode, embedding, k and classifier that the report draws one figure of, and
    whose two-model partition SSLMem is set against."""
    return {"crop_mode": config["crop"]["modes"][0],
            "embedding": config["knn"]["embeddings"][0], "k": config["knn"]["k"][0],
            "classifier": config["onemodel"]["classifiers"][0]}


# ---------------------------------------------------------------- resources (dejavu/resources.py)

def sized(formula):
    """A resource computed from a job's inputs by formula(wildcards, input); while an input
    does not exist yet Snakemake shows it as <TBD> and computes it before the job runs."""
    def resource(wildcards, input):
        for path in input:
            if not os.path.exists(path):
                raise FileNotFoundError(2, "not made yet", path)
        return formula(wildcards, input)
    return resource


def model_arch(wildcards) -> tuple[str, list[int], int]:
    """(architecture, projector sizes, width) of a run's model."""
    if wildcards.method == EXTERNAL:
        spec = EXTERNAL_MODELS[wildcards.backbone]
        return spec["architecture"], spec["projector"] or [], spec["width"]
    model = VARIANTS[wildcards.variant]["model"]
    return wildcards.backbone, model["projector"], model["width"]


def model_dims(wildcards) -> tuple[int, int]:
    """(backbone, projector) embedding sizes of a run's model."""
    return embedding_dims(wildcards, "backbone"), embedding_dims(wildcards, "projector")


def embedding_dims(wildcards, embedding: str | None = None) -> int:
    """The size of the run's embedding (an output or a layer; `wildcards.embedding`)."""
    arch, head, width = model_arch(wildcards)
    return dejavu.core.layers.width(embedding or wildcards.embedding, arch, width, head,
                                    dejavu.resources.backbone_size(arch, width)[1])


def stored_rows(path: str, array: str | None = None) -> int:
    return dejavu.resources.stored_shape(path, array)[0]


def embedded_rows(store: str) -> int:
    """Rows of an embedding store, whichever embeddings it holds (a store about to be
    remade for other knn.embeddings may lack the one a job will read)."""
    return stored_rows(store, "source_row")


def model_forward(wildcards) -> float:
    """Forward multiply-adds of one crop.side image through a run's model."""
    arch, head, width = model_arch(wildcards)
    model = (config["model"] if wildcards.method == EXTERNAL
             else VARIANTS[wildcards.variant]["model"])
    return dejavu.resources.forward_macs(arch, width, config["crop"]["side"], head,
                                         small_stem=model["small_stem"],
                                         patch_size=model["patch_size"])


def planned(formula, override=None):
    """A job's run time in minutes: `override` where the config sets one, else
    formula(wildcards, input) of its sizes (dejavu.resources, "run time")."""
    return sized(formula) if override is None else override


def training_minutes(wildcards, input, epochs: int) -> int:
    return dejavu.resources.train_minutes(
        epochs=epochs, n_images=dejavu.resources.split_count(input.split, (wildcards.subset,)),
        forward=model_forward(wildcards), gpus=config["train"]["gpus"],
        processes=train_processes())


def snapshot_runtime(wildcards, input) -> int:
    """The epochs a snapshot continues from its state (none when it copies one)."""
    return training_minutes(wildcards, input, int(wildcards.epoch) - start_state(wildcards))


def embed_runtime(wildcards, input) -> int:
    rows = (dejavu.resources.split_count(input.table, ("public",))
            if wildcards.part == "public" else stored_rows(input.images))
    return dejavu.resources.embed_minutes(rows=math.ceil(rows / config["embed"]["jobs"]),
                                          forward=model_forward(wildcards),
                                          gpus=config["embed"]["gpus"])


def knn_runtime(wildcards, input) -> int:
    return dejavu.resources.knn_minutes(
        n_public=embedded_rows(input.public), n_queries=embedded_rows(input.crops),
        dims=embedding_dims(wildcards),
        gpus=config["knn"]["gpus"] if KNN_BACKEND == "torch" else 0)


def probe_runtime(wildcards, input) -> int:
    count = dejavu.resources.split_count
    return dejavu.resources.probe_minutes(
        n_train=count(input.split, (wildcards.subset,)),
        n_test=count(input.split, ("public_test",)),
        n_public=embedded_rows(input.public), forward=model_forward(wildcards),
        dims=model_dims(wildcards)[0 if config["probe"]["embedding"] == "backbone" else 1],
        classes=dejavu.resources.split_classes(input.split), steps=config["probe"]["steps"],
        gpus=config["embed"]["gpus"])


def scored_images(input) -> int:
    """The attacked images SSLMem scores (sets A, B and the held-out set)."""
    return dejavu.resources.split_count(input.split, ("A", "B", "heldout"), True)


def sslmem_runtime(wildcards, input) -> int:
    return dejavu.resources.sslmem_minutes(
        n_scored=scored_images(input),
        views=config["sslmem"]["views"], forward=model_forward(wildcards),
        gpus=config["sslmem"]["gpus"])


def correlation_runtime(wildcards, input) -> int:
    """The ResNet classifier's training and predictions (naive Bayes counts tags: the
    least a job asks for)."""
    if wildcards.classifier != "resnet":
        return dejavu.resources.MIN_MINUTES
    net = config["onemodel"]["resnet"]
    forward = dejavu.resources.resnet_macs(f"resnet{net['depth']}", config["crop"]["side"],
                                           net["small_stem"], net["width"])
    return dejavu.resources.correlation_minutes(
        n_train=dejavu.resources.split_count(input.split, (wildcards.subset,), True),
        n_crops=stored_rows(input.crops), forward=forward, epochs=net["epochs"],
        gpus=config["onemodel"]["gpus"])


def decoder_forward() -> float:
    rcdm = config["rcdm"]
    return dejavu.resources.unet_macs(rcdm["resolution"],
                                      [rcdm["width"] * m for m in rcdm["channel_mult"]],
                                      rcdm["layers_per_block"])


def decoder_train_runtime(wildcards, input) -> int:
    """rcdm.max_runtime + 10 where set (the job continues itself), else rcdm.runtime, else
    the formula."""
    rcdm = config["rcdm"]
    fixed = limited_runtime("rcdm") or rcdm["runtime"]
    if fixed:
        return fixed
    return dejavu.resources.decoder_train_minutes(
        steps=rcdm["steps"], batch_size=rcdm["batch_size"], forward=decoder_forward(),
        gpus=rcdm["gpus"])


def decoder_sample_runtime(wildcards, input) -> int:
    rcdm = config["rcdm"]
    return dejavu.resources.decoder_sample_minutes(
        examples=rcdm["examples"], self_images=rcdm["self_images"], samples=rcdm["samples"],
        sample_steps=rcdm["sample_steps"], forward=decoder_forward(), gpus=rcdm["gpus"])


def train_memory(wildcards, input) -> int:
    loader = config["train"]["loader"]
    train, model = VARIANTS[wildcards.variant]["train"], VARIANTS[wildcards.variant]["model"]
    return dejavu.resources.train(
        n_images=dejavu.resources.split_count(input.split, (wildcards.subset,)),
        side=config["crop"]["side"], processes=train_processes(),
        batch_size=train["batch_size"], backbone=wildcards.backbone,
        width=model["width"], projector=model["projector"],
        cache_mb=loader["cache_mb"], workers=loader["workers"],
        prefetch=loader["prefetch"], on_cpu=config["train"]["gpus"] == 0,
        small_stem=model["small_stem"],
        canvas=dejavu.resources.stored_shape(input.images)[1])["mem_mb"]


def train_threads() -> int:
    """CPUs of a training job: one per process, and one per loader worker of each process
    on GPUs (a CPU job's loader threads share its CPUs: the numbers stay the same)."""
    per_process = 1 + config["train"]["loader"]["workers"] if config["train"]["gpus"] else 1
    return train_processes() * per_process


def crops_memory(wildcards, input) -> int:
    from dejavu.data.crops import BLOCK_ROWS
    return dejavu.resources.crops(
        n_attacked=dejavu.resources.split_count(input.split, ("A", "B", "heldout"), True),
        canvas=dejavu.resources.stored_shape(input.images)[1], side=config["crop"]["side"],
        block_rows=BLOCK_ROWS)


def embed_memory(wildcards, input) -> int:
    return dejavu.resources.embed(
        batch_size=dejavu.resources.batch_rows(config["embed"]["batch_size"]),
        canvas=dejavu.resources.stored_shape(input.images)[1], side=config["crop"]["side"],
        shard_rows=config["embed"]["shard_rows"],
        dims=sum(embedding_dims(wildcards, e) for e in EMBED_ARRAYS),
        dtype_bytes=dejavu.resources.dtype_bytes(config["embed"]["dtype"]))


def knn_memory(wildcards, input) -> int:
    return dejavu.resources.knn(
        n_public=embedded_rows(input.public),
        n_queries=embedded_rows(input.crops),
        dims=embedding_dims(wildcards), k=int(wildcards.k), flat_index=KNN_BACKEND == "faiss")


def index_memory(wildcards, input) -> int:
    return dejavu.resources.knn(n_public=embedded_rows(input.store),
                                n_queries=0, dims=embedding_dims(wildcards), k=0)


def probe_memory(wildcards, input) -> int:
    return dejavu.resources.probe(
        n_train=dejavu.resources.split_count(input.split, (wildcards.subset,)),
        n_test=dejavu.resources.split_count(input.split, ("public_test",)),
        dims=model_dims(wildcards)[0 if config["probe"]["embedding"] == "backbone" else 1])


def sslmem_memory(wildcards, input) -> int:
    return dejavu.resources.sslmem(
        n_scored=scored_images(input),
        side=config["crop"]["side"], batch_size=dejavu.resources.batch_rows(config["embed"]["batch_size"]),
        views=config["sslmem"]["views"])


def correlation_memory(wildcards, input) -> int:
    return dejavu.resources.correlation(
        n_train=dejavu.resources.split_count(input.split, (wildcards.subset,), True),
        n_crops=stored_rows(input.crops), side=config["crop"]["side"],
        classes=dejavu.resources.split_classes(input.split))


def decoder_train_memory(wildcards, input) -> int:
    return dejavu.resources.decoder_train(
        n_public=embedded_rows(input.public), resolution=config["rcdm"]["resolution"],
        cond_dims=sum(model_dims(wildcards)),
        cond_bytes=dejavu.resources.dtype_bytes(config["embed"]["dtype"]))


def decoder_sample_memory(wildcards, input) -> int:
    return dejavu.resources.decoder_sample(n_public=embedded_rows(input.public_A),
                                           dims=embedding_dims(wildcards))
