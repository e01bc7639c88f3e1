# Paths, wildcard patterns and target lists shared by the rules. Logic lives in dejavu/.
#
# The results path scheme, written only here: each pattern, and the rule that writes it.
# R = {results}/{dataset.name}; RUN = {method}/{backbone}/{variant}/n{size}/s{seed} (variant:
# default, or a name from variants:); MODEL = RUN/{subset} (A, B, and the removal runs
# A-memorized<m>, A-random<m>: dejavu/data/removal.py). Every rule also writes a
# log and a timing file: R/logs/<rule>/..., R/benchmarks/<rule>/... (log_path, bench_path).

import itertools
import math

R = f"{config['results']}/{config['dataset']['name']}"
RUN = "{method}/{backbone}/{variant}/n{size}/s{seed}"
MODEL = f"{RUN}/{{subset}}"
# synth, or ingest_scan + ingest (shard jobs) + ingest_finalize: the dataset store, under
# results/ unless dataset.store puts it where configs share it
DATASET = dejavu.config.dataset_store(config)
DATASET_IMAGES = f"{DATASET}/images.zarr"            # uint8 N x H x W x 3
DATASET_INDEX = f"{DATASET}/index.parquet"           # id, label, boxes, size (, scene)
DATASET_REJECTS = f"{DATASET}/rejects.parquet"       # every skipped input and why
DATASET_MANIFEST = f"{DATASET}/manifest.parquet"     # ingest_scan: the files to ingest
DATASET_CLASSES = f"{DATASET}/classes.csv"
DATASET_SOURCE = f"{DATASET}/{dejavu.config.STORE_SOURCE}"  # the settings it was made from
SPLIT = f"{R}/split/n{{size}}/split.parquet"         # split: A, B, heldout, public, public_test
CROPS_STORE = f"{R}/crops/n{{size}}/{{crop}}.zarr"   # crops: background crops of attacked images
CROPS_TABLE = f"{R}/crops/n{{size}}/{{crop}}.parquet"  # their rectangles, or why rejected
CHECKPOINT = f"{R}/models/{MODEL}/epoch{{epoch}}.pt"  # init (epoch 0), snapshot; import_model
STATE = f"{R}/models/{MODEL}/states/epoch{{epoch}}.pt"  # train: every train.state_every epochs
EMBED_STORE = f"{R}/embed/{MODEL}/epoch{{epoch}}/{{part}}.zarr"  # embed + embed_finalize;
                                                     # part: public | crops-{crop}
INDEX = f"{R}/index/{MODEL}/epoch{{epoch}}/{{embedding}}.faiss"  # index: exact, public set
KNN = f"{R}/knn/{MODEL}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}.parquet"  # knn
PROBE = f"{R}/probe/{MODEL}/epoch{{epoch}}.json"     # probe: linear probe accuracies
SCORE = f"{R}/score/{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}.json"  # score
SCORE_CURVES = f"{R}/score/{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}.curves.parquet"
SCORE_BOOT = f"{R}/score/{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}.boot.parquet"
DECODER = f"{R}/rcdm/{MODEL}/epoch{{epoch}}/decoder.pt"  # decoder_train
RCDM = f"{R}/rcdm/{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}"  # decoder_sample:
RCDM_SAMPLES = f"{RCDM}.samples.zarr"                # reconstructions,
RCDM_TABLE = f"{RCDM}.samples.parquet"               # their judged classes,
RCDM_QUALITY = f"{RCDM}.json"                        # quality
CORRELATION = f"{R}/correlation/n{{size}}/{{crop}}/{{classifier}}-{{subset}}"  # correlation:
                                                     # .parquet predictions, .pt weights
ONEMODEL = f"{R}/onemodel/{RUN}/epoch{{epoch}}/{{crop}}-{{embedding}}-k{{k}}-{{classifier}}"
SSLMEM = f"{R}/sslmem/{RUN}/epoch{{epoch}}.parquet"  # sslmem: per attacked image
SSLMEM_LAYERS = f"{R}/sslmem/{RUN}/epoch{{epoch}}.layers.parquet"  # LayerMem per embedding
UNITMEM = f"{R}/unitmem/{RUN}/epoch{{epoch}}.parquet"  # unitmem: per unit of A and B
REMOVED = f"{R}/removal/{RUN}/{{kind}}{{m}}.parquet"  # removal_list: ids a removal run leaves out
REMOVAL_TABLE = f"{R}/removal/removal.csv"           # removal: downstream accuracy per run
DOWNSTREAM = f"{R}/downstream/{{downstream}}/{MODEL}/epoch{{epoch}}.json"  # downstream_probe
# What every embedding store holds: the model's two outputs, and the intermediate layers
# knn.embeddings asks for (definitions §11)
EMBED_ARRAYS = [*dejavu.core.layers.OUTPUTS, *dejavu.core.layers.inner(config["knn"]["embeddings"])]
EXTERNAL = "external"  # the method name of models trained elsewhere
TRAINED = rf"(?!{EXTERNAL}/)[a-z][a-z0-9_]*"  # a method the workflow trains
SUMMARY = f"{config['results']}/summary.csv"          # summary (definitions §9)
REPORT_HTML = f"{config['results']}/report.html"      # report, with {results}/figures/
ENV = "../../envs/dejavu.yaml"
DEFAULT = dejavu.variants.DEFAULT_VARIANT
# Every variant's config by name (variants: and sweeps:), the config as written first as
# `default`, and the settings each (variant, method) trains with (its recipe merged in)
VARIANTS = dejavu.variants.variants(config, os.path.join(workflow.basedir, SCHEMA))
SETTINGS = dejavu.variants.model_settings(config, VARIANTS,
                                          os.path.join(workflow.basedir, SCHEMA))
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
    keys = (*dejavu.dataset_config.PATHS, "name", "boxes_outside", "strict")
    source = {key: d.get(key) for key in keys}
    for key in dejavu.dataset_config.PATHS:
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


def wildcard(name: str, kind=str):
    """A param that passes the job's wildcard `name` on to its stage, as a `kind`."""
    return lambda wc: kind(getattr(wc, name))


def filled(pattern: str):
    """A param that is `pattern` with the job's wildcards filled in (a folder of its own)."""
    return lambda wc: pattern.format(**wc)


def settings(wc) -> dict:
    """The config a job's model trains with: its variant's, with its method's recipe."""
    return SETTINGS[wc.variant, wc.method]


def trained(key: str):
    """A setting of a job: train.`key` of its model's settings."""
    return lambda wc: settings(wc)["train"][key]


def modelled(key: str):
    """A setting of a job: model.`key` of its model's settings."""
    return lambda wc: settings(wc)["model"][key]


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


def removal_runs() -> list[dict]:
    """The wildcards of every removal run's probe: the default variant of each removal
    method, size and seed, at the last epoch, A itself (nothing removed) first."""
    spec = config["removal"]
    if not spec["enabled"]:
        return []
    subsets = ["A"] + [dejavu.data.removal.subset(kind, m) for kind in spec["kinds"]
                       for m in spec["counts"]]
    grid = run_grid(DEFAULT, variant=[DEFAULT])
    grid["method"] = [m for m in grid["method"] if m in (spec["methods"] or grid["method"])]
    keys = ("method", "backbone", "variant", "size", "seed")
    return [dict(zip(keys, values), subset=subset, epoch=train_epochs()[-1])
            for values in itertools.product(*(grid[k] for k in keys)) for subset in subsets]


def downstream_dataset(wildcards) -> dict:
    """The removal.downstream entry a downstream_probe job probes on."""
    return {data["name"]: data for data in config["removal"]["downstream"]}[wildcards.downstream]


def removed_list(wildcards):
    """A removal run's list of ids left out ([] for A and B, which leave nothing out)."""
    base, kind, m = dejavu.data.removal.parse(wildcards.subset)
    if kind is None:
        return []
    return REMOVED.format(**{k: getattr(wildcards, k) for k in
                             ("method", "backbone", "variant", "size", "seed")},
                          kind=kind, m=m)


def unitmem_targets() -> list[str]:
    """UnitMem's tables: every trained pair of every variant at its last epoch."""
    if not config["unitmem"]["enabled"]:
        return []
    return [path for variant in VARIANTS
            for path in expand(UNITMEM, epoch=train_epochs(variant)[-1],
                               **run_grid(variant, variant=[variant]))]
