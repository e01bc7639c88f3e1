# What each job asks a cluster for: memory (MB) and run time (minutes) from formulas over
# its inputs' sizes and its settings (dejavu/resources.py, where every formula is written and
# tested; docs/cluster.md), and the retries of a job stopped at its time limit.

def train_runtime(wildcards, input):
    """Minutes a training job asks for: train.max_runtime with ten to start and save (a
    job that would need longer continues in the next attempt), else its formula."""
    return (limited_runtime("train")
            or training_minutes(wildcards, input, settings(wildcards)["train"]["epochs"]))


def section_of(section: str) -> dict:
    """The config section at a dotted key (`train`, `vlm.train`)."""
    node = config
    for key in section.split("."):
        node = node[key]
    return node


def limited_runtime(section: str) -> int | None:
    """`section`.max_runtime + 10 minutes to start and save; None where it is not set."""
    return dejavu.runtime.limited_minutes(section_of(section)["max_runtime"])


def continuations(section: str) -> int:
    """Resubmissions of a job stopped at `section`.max_runtime, by the main Snakemake
    process only: a cluster job's own Snakemake would retry it inside the allocation whose
    time ran out."""
    settings = section_of(section)
    if not settings["max_runtime"] or workflow.remote_exec or workflow.subprocess_exec:
        return 0
    return settings["continuations"]


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
    model = settings(wildcards)["model"]
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
             else settings(wildcards)["model"])
    return dejavu.runtime.forward_macs(arch, width, config["crop"]["side"], head,
                                         small_stem=model["small_stem"],
                                         patch_size=model["patch_size"])


def planned(formula, override=None):
    """A job's run time in minutes: `override` where the config sets one, else
    formula(wildcards, input) of its sizes (dejavu.runtime)."""
    return sized(formula) if override is None else override


def training_minutes(wildcards, input, epochs: int) -> int:
    return dejavu.runtime.train_minutes(
        epochs=epochs, n_images=dejavu.resources.split_count(input.split, (wildcards.subset,)),
        forward=model_forward(wildcards), gpus=config["train"]["gpus"],
        processes=train_processes())


def snapshot_runtime(wildcards, input) -> int:
    """The epochs a snapshot continues from its state (none when it copies one)."""
    return training_minutes(wildcards, input, int(wildcards.epoch) - start_state(wildcards))


def embed_runtime(wildcards, input) -> int:
    rows = (dejavu.resources.split_count(input.table, ("public",))
            if wildcards.part == "public" else stored_rows(input.images))
    return dejavu.runtime.embed_minutes(rows=math.ceil(rows / config["embed"]["jobs"]),
                                          forward=model_forward(wildcards),
                                          gpus=config["embed"]["gpus"])


def knn_runtime(wildcards, input) -> int:
    return dejavu.runtime.knn_minutes(
        n_public=embedded_rows(input.public), n_queries=embedded_rows(input.crops),
        dims=embedding_dims(wildcards),
        gpus=config["knn"]["gpus"] if KNN_BACKEND == "torch" else 0)


def probe_dims(wildcards) -> int:
    """The size of the embedding a run's linear probe reads (probe.embedding)."""
    return model_dims(wildcards)[0 if config["probe"]["embedding"] == "backbone" else 1]


def probe_runtime(wildcards, input) -> int:
    count = dejavu.resources.split_count
    return dejavu.runtime.probe_minutes(
        n_train=count(input.split, (wildcards.subset,)),
        n_test=count(input.split, ("public_test",)),
        n_public=embedded_rows(input.public), forward=model_forward(wildcards),
        dims=probe_dims(wildcards),
        classes=dejavu.resources.split_classes(input.split), steps=config["probe"]["steps"],
        gpus=config["embed"]["gpus"])


def downstream_parts(wildcards, input) -> tuple[int, int]:
    """(fitted, tested) images of a second dataset, from its index and test_fraction (at
    most one image a class off the split's own rounding)."""
    rows = dejavu.resources.table_rows(input.index)
    tested = round(downstream_dataset(wildcards)["test_fraction"] * rows)
    return rows - tested, tested


def downstream_runtime(wildcards, input) -> int:
    n_fit, n_test = downstream_parts(wildcards, input)
    return dejavu.runtime.probe_minutes(
        n_train=n_fit, n_test=n_test, n_public=n_fit, forward=model_forward(wildcards),
        dims=probe_dims(wildcards),
        classes=dejavu.resources.split_classes(input.index), steps=config["probe"]["steps"],
        gpus=config["embed"]["gpus"])


def scored_images(input) -> int:
    """The attacked images SSLMem scores (sets A, B and the held-out set)."""
    return dejavu.resources.split_count(input.split, ("A", "B", "heldout"), True)


def sslmem_runtime(wildcards, input) -> int:
    return dejavu.runtime.sslmem_minutes(
        n_scored=scored_images(input),
        views=config["sslmem"]["views"], forward=model_forward(wildcards),
        gpus=config["sslmem"]["gpus"])


def unitmem_runtime(wildcards, input) -> int:
    """Every image of set A's views through both models (SSLMem's shape of work)."""
    return dejavu.runtime.sslmem_minutes(
        n_scored=dejavu.resources.split_count(input.split, ("A",), False),
        views=config["unitmem"]["views"], forward=model_forward(wildcards),
        gpus=config["unitmem"]["gpus"])


def unitmem_memory(wildcards, input) -> int:
    return dejavu.resources.unitmem(
        side=config["crop"]["side"],
        batch_size=dejavu.resources.batch_rows(config["embed"]["batch_size"]))


def correlation_runtime(wildcards, input) -> int:
    """The ResNet classifier's training and predictions (naive Bayes counts tags: the
    least a job asks for)."""
    if wildcards.classifier != "resnet":
        return dejavu.runtime.MIN_MINUTES
    net = config["onemodel"]["resnet"]
    forward = dejavu.runtime.resnet_macs(f"resnet{net['depth']}", config["crop"]["side"],
                                           net["small_stem"], net["width"])
    return dejavu.runtime.correlation_minutes(
        n_train=dejavu.resources.split_count(input.split, (wildcards.subset,), True),
        n_crops=stored_rows(input.crops), forward=forward, epochs=net["epochs"],
        gpus=config["onemodel"]["gpus"])


def decoder_forward() -> float:
    rcdm = config["rcdm"]
    return dejavu.runtime.unet_macs(rcdm["resolution"],
                                      [rcdm["width"] * m for m in rcdm["channel_mult"]],
                                      rcdm["layers_per_block"])


def decoder_train_runtime(wildcards, input) -> int:
    """rcdm.max_runtime + 10 where set (the job continues itself), else rcdm.runtime, else
    the formula."""
    rcdm = config["rcdm"]
    fixed = limited_runtime("rcdm") or rcdm["runtime"]
    if fixed:
        return fixed
    return dejavu.runtime.decoder_train_minutes(
        steps=rcdm["steps"], batch_size=rcdm["batch_size"], forward=decoder_forward(),
        gpus=rcdm["gpus"])


def decoder_sample_runtime(wildcards, input) -> int:
    rcdm = config["rcdm"]
    return dejavu.runtime.decoder_sample_minutes(
        examples=rcdm["examples"], self_images=rcdm["self_images"], samples=rcdm["samples"],
        sample_steps=rcdm["sample_steps"], forward=decoder_forward(), gpus=rcdm["gpus"])


def train_memory(wildcards, input) -> int:
    loader = config["train"]["loader"]
    train, model = settings(wildcards)["train"], settings(wildcards)["model"]
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
        dtype_bytes=dejavu.resources.dtype_bytes(config["embed"]["dtype"]),
        table_rows=dejavu.resources.table_rows(input.table))


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
        dims=probe_dims(wildcards))


def downstream_memory(wildcards, input) -> int:
    n_fit, n_test = downstream_parts(wildcards, input)
    return dejavu.resources.probe(
        n_train=n_fit, n_test=n_test,
        dims=probe_dims(wildcards))


def sslmem_memory(wildcards, input) -> int:
    return dejavu.resources.sslmem(
        n_scored=scored_images(input),
        side=config["crop"]["side"], batch_size=dejavu.resources.batch_rows(config["embed"]["batch_size"]),
        views=config["sslmem"]["views"])


def split_memory(wildcards, input) -> int:
    return dejavu.resources.split(n_rows=dejavu.resources.table_rows(input.index))


def score_memory(wildcards, input) -> int:
    return dejavu.resources.score(n_crops=dejavu.resources.table_rows(input.knn_a))


def onemodel_memory(wildcards, input) -> int:
    return dejavu.resources.onemodel(n_crops=dejavu.resources.table_rows(input.knn_a))


def sample_rows(input) -> int:
    """Rows of the per-sample tables a summary or report job reads."""
    return sum(dejavu.resources.table_rows(path)
               for path in [*input.get("onemodel_samples", []), *input.get("sslmem", [])])


def summary_memory(wildcards, input) -> int:
    return dejavu.resources.summary(n_samples=sample_rows(input))


def report_memory(wildcards, input) -> int:
    return dejavu.resources.report(n_samples=sample_rows(input))


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
