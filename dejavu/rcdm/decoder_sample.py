"""The decoder_sample stage: what each model's decoder draws (definitions §7).

Two paths, each judged by both models' k-NN on the public set X:
- self: public test images decoded from their own embedding, the check that a decoder
  reads its model's embedding at all (retrieval rank, class recovered);
- attack: for the target's most confident memorized and correlated crops, the mean
  embedding of the crop's k nearest public images, decoded by the target's decoder and by
  the reference's.
Every sample's noise comes from its own seed (image id and draw), so batching changes
nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core.models import pick_device
from .decoder import Decoder, DecoderConfig, load_decoder_of, sample, sample_seed
from ..data.split import read_set
from .decoder_train import conditioning

log = logging.getLogger(__name__)
SUBSETS = ("A", "B")


def retrieval_ranks(sampled: np.ndarray, conditioning: np.ndarray) -> np.ndarray:
    """For each i: how many conditioning embeddings lie closer (L2) to the embedding of
    sample i than conditioning[i] does -- 0 when a sample is nearest its own condition;
    (N - 1) / 2 on average by chance."""
    d = torch.cdist(torch.as_tensor(sampled, dtype=torch.float64),
                    torch.as_tensor(conditioning, dtype=torch.float64))
    own = d.diagonal()[:, None]
    return (d < own).sum(1).numpy()


def mean_embeddings(neighbours: list[np.ndarray], store_rows: np.ndarray,
                    embeddings: np.ndarray) -> np.ndarray:
    """Mean embedding of each image's neighbours (dataset rows) from a store whose rows
    are `store_rows` (sorted) with `embeddings` aligned to them."""
    out = np.empty((len(neighbours), embeddings.shape[1]), np.float32)
    for i, rows in enumerate(neighbours):
        at = np.searchsorted(store_rows, rows)
        if (at >= len(store_rows)).any() or (store_rows[at] != rows).any():
            raise ValueError("a neighbour is not in the public embedding store")
        out[i] = embeddings[at].astype(np.float32).mean(0)
    return out


def embed_images(model, images: np.ndarray, side: int, device: torch.device,
                 batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(backbone, projector) of (n, r, r, 3) uint8 images resized to the model's `side`,
    through the embed stage's own batches (`embed.embed_batches`)."""
    from ..attack.embed import embed_batches
    blocks = list(embed_batches(model, images, np.arange(len(images)), side, batch_size,
                                device))
    return tuple(np.concatenate([b[name] for b in blocks]) for name in ("backbone", "projector"))


class Judge:
    """k-NN on the public set X in one model's embedding: the class a sample shows."""

    def __init__(self, model, store_path: str, embedding: str, k: int, labels: pd.Series,
                 side: int, device: torch.device, metric: str = "l2"):
        from ..attack.embeddings import read_embeddings
        self.public, rows = read_embeddings(store_path, embedding)
        self.labels = labels.loc[rows].to_numpy()
        self.model, self.embedding, self.k = model, embedding, k
        self.side, self.device, self.metric = side, device, metric
        self.classes = int(labels.max()) + 1

    def classify(self, images: np.ndarray) -> np.ndarray:
        return self.classify_embedded(*embed_images(self.model, images, self.side,
                                                    self.device))

    def classify_embedded(self, h: np.ndarray, z: np.ndarray) -> np.ndarray:
        """The class of images whose (backbone, projector) embeddings are h, z."""
        from ..attack.knn import label_crops, search
        queries = z if self.embedding == "projector" else h
        dist, ids = search(self.public, queries, min(self.k, len(self.public)), self.metric,
                           str(self.device))
        return label_crops(dist, ids, self.labels, self.classes)["prediction"]


def balanced_rows(split: pd.DataFrame, name: str, n: int) -> pd.DataFrame:
    """About n rows of split set `name`, the same number from every class (lowest rows)."""
    chosen = split[split["set"] == name].sort_values("row")
    per_class = max(1, -(-n // chosen["label"].nunique()))
    return chosen.groupby("label").head(per_class).sort_values("row")


def attacked_examples(knn_target: str, knn_reference: str, subset: str, p: float,
                      examples: int) -> pd.DataFrame:
    """The attacked images of set `subset` the target ranks most confident (its top-p),
    grouped memorized (target right, reference wrong) and correlated (both right), at most
    `examples` of each, most confident first."""
    from ..attack.score import confidence_order, top_count
    t = pd.read_parquet(knn_target)
    r = pd.read_parquet(knn_reference, columns=["id", "set", "neighbors", "correct",
                                                "prediction"])
    t = t[t["set"] == subset].set_index("id")
    r = r[r["set"] == subset].set_index("id").drop(columns="set")
    both = t.merge(r, left_index=True, right_index=True, suffixes=("", "_ref")).reset_index()
    order = confidence_order(both["confidence"].to_numpy(), both["mean_distance"].to_numpy(),
                             both["id"].to_numpy())
    top = both.iloc[order[:top_count(len(both), p)]]
    groups = {"memorized": top["correct"] & ~top["correct_ref"],
              "correlated": top["correct"] & top["correct_ref"]}
    picked = [top[mask].head(examples).assign(group=name) for name, mask in groups.items()]
    return pd.concat(picked, ignore_index=True)


@dataclass
class Side:
    """One model of the pair, with its decoder, its judge and its public conditioning."""
    model: torch.nn.Module
    decoder: Decoder
    cfg: DecoderConfig
    judge: Judge
    public: np.ndarray       # conditioning embeddings of the public set, by sorted row
    public_rows: np.ndarray


class Samples:
    """What the stage writes, gathered as it goes: the samples, one table row per sample,
    and the attacked crops (`image` and `crop_image` index the two)."""

    def __init__(self):
        self.images: list[np.ndarray] = []
        self.rows: list[pd.DataFrame] = []
        self.crops: list[np.ndarray] = []

    def add(self, images: np.ndarray, crop_image=-1, **columns) -> None:
        start = sum(len(x) for x in self.images)
        self.images.append(images)
        self.rows.append(pd.DataFrame({"image": np.arange(start, start + len(images)),
                                       "crop_image": -1, **columns}))
        self.rows[-1]["crop_image"] = crop_image

    def add_crops(self, crops: np.ndarray) -> np.ndarray:
        """Store attacked crops; their indices in the `crops` array."""
        start = sum(len(x) for x in self.crops)
        self.crops.append(crops)
        return np.arange(start, start + len(crops))

    def table(self) -> pd.DataFrame:
        table = pd.concat(self.rows, ignore_index=True)
        table["recovered"] = _recovered(table)
        return table

    def write_images(self, path: str, crop_shape: tuple) -> None:
        import zarr
        group = zarr.open_group(path, mode="w")
        crops = self.crops or [np.zeros((0, *crop_shape), np.uint8)]
        for name, parts in (("samples", self.images), ("crops", crops)):
            block = np.concatenate(parts)
            group.create_array(name, data=block, chunks=(max(1, min(256, len(block))),
                                                         *block.shape[1:]))


def load_pair(decoders: dict[str, str], checkpoints: dict[str, str],
              public_stores: dict[str, str], labels: pd.Series, *, embedding: str, k: int,
              side: int, device: torch.device, metric: str) -> dict[str, Side]:
    from ..core.models import load_checkpoint
    pair = {}
    for s in SUBSETS:
        model = load_checkpoint(checkpoints[s])[0].to(device).eval()
        decoder, cfg = load_decoder_of(decoders[s], checkpoints[s], device)
        judge = Judge(model, public_stores[s], embedding, k, labels, side, device, metric)
        pair[s] = Side(model, decoder, cfg, judge, *conditioning(public_stores[s]))
    return pair


def decode_self(pair: dict[str, Side], chosen: pd.DataFrame, originals: np.ndarray,
                out: Samples, *, seed: int, sample_steps: int, side: int,
                device: torch.device) -> dict:
    """Each decoder draws the public test images `chosen` from their own embedding; how
    well the samples' embeddings find their own condition and show the true class."""
    quality = {}
    truth = chosen["label"].to_numpy()
    for s, m in pair.items():
        h, z = embed_images(m.model, originals, side, device)
        cond = np.concatenate([h, z], 1)
        seeds = [sample_seed(seed, f"self/{i}", 0) for i in chosen["id"]]
        drawn = sample(m.decoder, m.cfg, cond, seeds, sample_steps, device=device)
        hs, zs = embed_images(m.model, drawn, side, device)
        ranks = retrieval_ranks(standardised(m.decoder, np.concatenate([hs, zs], 1)),
                                standardised(m.decoder, cond))
        predicted = m.judge.classify_embedded(hs, zs)  # the samples' embeddings above
        ceiling = m.judge.classify(_resize_uint8(originals, m.cfg.resolution))
        n = len(chosen)
        quality[s] = {
            "images": n, "top1_retrieval": float(np.mean(ranks == 0)),
            "top1_chance": 1 / n, "mean_rank": float(ranks.mean() / (n - 1)),
            "mean_rank_chance": 0.5, "class_recovery": float(np.mean(predicted == truth)),
            "class_recovery_originals": float(np.mean(ceiling == truth)),
            "class_chance": 1 / m.judge.classes}
        out.add(drawn, kind="self", decoder=s, half="", group="", id=chosen["id"].to_numpy(),
                row=chosen["row"].to_numpy(), label=truth, sample=0, seed=seeds, rank=ranks,
                judged_a=predicted if s == "A" else -1, judged_b=predicted if s == "B" else -1)
        log.info("self-reconstruction with decoder %s: %s", s, quality[s])
    return quality


def decode_attack(pair: dict[str, Side], chosen: pd.DataFrame, target: str, crops,
                  out: Samples, *, samples: int, seed: int, sample_steps: int,
                  device: torch.device) -> None:
    """Set `target` attacked: each chosen crop's neighbourhood embedding, drawn `samples`
    times by the target's decoder and by the reference's."""
    reference = "B" if target == "A" else "A"
    crop_image = np.repeat(out.add_crops(np.stack([crops[int(c)] for c in chosen["crop_row"]])),
                           samples)
    ids = np.repeat(chosen["id"].to_numpy(), samples)
    draw = np.tile(np.arange(samples), len(chosen))
    seeds = [sample_seed(seed, f"attack/{i}", j) for i, j in zip(ids, draw)]
    for role, model, column in (("target", target, "neighbors"),
                                ("reference", reference, "neighbors_ref")):
        m = pair[model]
        cond = mean_embeddings(list(chosen[column]), m.public_rows, m.public)
        drawn = sample(m.decoder, m.cfg, np.repeat(cond, samples, axis=0), seeds,
                       sample_steps, device=device)
        out.add(drawn, crop_image=crop_image, kind="attack", decoder=role, half=target,
                group=np.repeat(chosen["group"].to_numpy(), samples), id=ids,
                row=np.repeat(chosen["row"].to_numpy(), samples),
                label=np.repeat(chosen["label"].to_numpy(), samples), sample=draw,
                seed=seeds, rank=-1, judged_a=pair["A"].judge.classify(drawn),
                judged_b=pair["B"].judge.classify(drawn))


def attack_quality(table: pd.DataFrame) -> dict:
    """Per group (memorized, correlated): images decoded, and the share of samples showing
    the true class with the target's decoder and with the reference's."""
    quality = {}
    for group, part in table[table["kind"] == "attack"].groupby("group"):
        by_role = part.groupby("decoder")["recovered"].mean()
        quality[group] = {"images": int(part["id"].nunique()),
                          "target": float(by_role.get("target", np.nan)),
                          "reference": float(by_role.get("reference", np.nan))}
    return quality


def run_sample(decoders: dict[str, str], checkpoints: dict[str, str],
               public_stores: dict[str, str], knns: dict[str, str], images_path: str,
               split_path: str, crops_store: str, out_images: str, out_table: str,
               out_json: str, *, meta: dict | None = None,
               embedding: str, k: int, p: float, examples: int, samples: int,
               sample_steps: int, self_images: int, seed: int, side: int,
               metric: str = "l2", device: str = "auto", threads: int = 1) -> None:
    """Decode attacked images (both halves: set A attacked with target A, set B with target
    B) and public test images; judge every sample. Writes a Zarr group (`samples`, and
    `crops`: the attacked crops), one table row per sample (`image`: its index in
    `samples`, `crop_image`: its crop's in `crops`), and the quality figures."""
    from ..core.store import open_images
    torch.set_num_threads(threads)
    dev = pick_device(device)
    split = pd.read_parquet(split_path)
    labels = split.drop_duplicates("row").set_index("row")["label"]
    pair = load_pair(decoders, checkpoints, public_stores, labels, embedding=embedding, k=k,
                     side=side, device=dev, metric=metric)
    out = Samples()
    chosen = balanced_rows(split, "public_test", self_images)
    originals, _ = read_set(images_path, split_path, "public_test", side,
                            chosen["row"].to_numpy())
    quality = {"self": decode_self(pair, chosen, originals, out, seed=seed,
                                   sample_steps=sample_steps, side=side, device=dev)}
    crops = open_images(crops_store)
    for target in SUBSETS:
        reference = "B" if target == "A" else "A"
        chosen = attacked_examples(knns[target], knns[reference], target, p, examples)
        if chosen.empty:  # no memorized or correlated crop among the target's top-p
            log.info("set %s attacked: nothing to decode", target)
            continue
        decode_attack(pair, chosen, target, crops, out, samples=samples, seed=seed,
                      sample_steps=sample_steps, device=dev)
    table = out.table()
    quality["attack"] = attack_quality(table)
    quality["settings"] = {"embedding": embedding, "k": k, "p": p, "samples": samples,
                           "sample_steps": sample_steps, "seed": seed}
    quality["run"] = meta or {}
    out.write_images(out_images, crops.shape[1:])
    table.to_parquet(out_table, index=False)
    Path(out_json).write_text(json.dumps(quality, indent=2))
    log.info("attack reconstructions: %s", quality["attack"])


@torch.no_grad()
def standardised(decoder: Decoder, embeddings: np.ndarray) -> np.ndarray:
    """Embeddings in the decoder's standardised conditioning space (where ranks are taken)."""
    x = torch.as_tensor(embeddings, dtype=torch.float32, device=decoder.cond_mean.device)
    return decoder.standardise(x).cpu().numpy()


def _recovered(table: pd.DataFrame) -> np.ndarray:
    """Share of judges that see the true class: both models for attack samples, the
    decoder's own model for self-reconstructions."""
    a = (table["judged_a"] == table["label"]).astype(float)
    b = (table["judged_b"] == table["label"]).astype(float)
    both = (table["judged_a"] >= 0) & (table["judged_b"] >= 0)
    only = np.where(table["judged_a"] >= 0, a, b)
    return np.where(both, (a + b) / 2, only)


def _resize_uint8(images: np.ndarray, side: int) -> np.ndarray:
    from ..core.store import resize_square
    x = torch.from_numpy(images).permute(0, 3, 1, 2) / 255
    x = resize_square(x, side).clamp(0, 1)
    return (x * 255).round().byte().permute(0, 2, 3, 1).numpy()
