"""The vision-language test's model stages (definitions §14): train a CLIP-style model on
one set's records, embed every record's image and caption with it, and test a target
against a reference on their embeddings.

Training goes through dejavu's training loop (`training.loop.train`: resume states,
checkpoints, the method registry): the images are the set's, the labels the captions'
token ids. The untrained model (epoch 0, the untrained control) is the one the loop
starts from: the image tower of `init_model` and the text tower the CLIP method builds
under the run's seed.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import torch

from ..core.text import tokenize
from . import attack, data

log = logging.getLogger(__name__)

SEARCHES = ("t2i", "t2t")  # caption to public images, caption to public captions


def untrained(method: str, backbone: str, projector: list[int], width: int,
              image_size: int, seed: int, subset: str, loss: dict):
    """The epoch-0 model with its text tower, as the training loop builds it."""
    from ..training import methods
    from ..training.train import init_model, run_seed
    model = init_model(backbone, projector, width, run_seed(seed, subset),
                       image_size=image_size)
    torch.manual_seed(run_seed(seed, subset))  # the loop's seed for the method's own parts
    return methods.get(method)(model, **loss).encoder()


def run_train(store: str, split_path: str, out_paths: dict[int, str], *, subset: str,
              seed: int, method: str, backbone: str, width: int, projector: list[int], image_size: int,
              epochs: int, batch_size: int, lr: float, weight_decay: float,
              warmup_epochs: int, loss: dict, resume_dir: str | None = None,
              threads: int = 1, device: str = "auto") -> None:
    """The vlm_train stage: the untrained model (epoch 0) and the trained one."""
    from ..core.models import save_checkpoint
    from ..training.train import SaveTo, TrainConfig, init_model, run_seed, train
    torch.set_num_threads(threads)
    records, rows = data.Records(store), data.set_rows(split_path, subset)
    images = records.images(rows)
    ids = tokenize(records.captions(rows), loss["context"], loss["buckets"])
    save_checkpoint(out_paths[0], untrained(method, backbone, projector, width, image_size,
                                            seed, subset, loss), epoch=0)
    cfg = TrainConfig(method=method, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr,
                      weight_decay=weight_decay, warmup_epochs=warmup_epochs,
                      seed=run_seed(seed, subset), device=device, checkpoints=(epochs,))
    model = init_model(backbone, projector, width, run_seed(seed, subset),
                       image_size=image_size)
    log.info("training %s on the %d records of set %s, %d epochs", method, len(rows), subset,
             epochs)
    train(model, images, cfg, SaveTo({epochs: out_paths[epochs]}), resume_dir, ids)


@torch.inference_mode()
def run_embed(store: str, checkpoint: str, out: str, *, batch_size: int = 256,
              device: str = "auto", threads: int = 1) -> None:
    """The vlm_embed stage: every record's image embedding (the projector output) and
    caption embedding (the text tower), float32, in store row order."""
    from ..core.models import load_checkpoint, pick_device
    torch.set_num_threads(threads)
    dev = pick_device(device)
    model = load_checkpoint(checkpoint)[0].to(dev).eval()
    arch, records = model.arch["text"], data.Records(store)
    rows = records.rows
    image, text = [], []
    for lo in range(0, len(rows), batch_size):
        part = rows[lo:lo + batch_size]
        x = torch.from_numpy(records.images(part)).to(dev).permute(0, 3, 1, 2)
        image.append(model(x.float() / 255)[1].float().cpu().numpy())
        ids = tokenize(records.captions(part), arch["context"], arch["buckets"])
        text.append(model.text(torch.from_numpy(ids).to(dev)).float().cpu().numpy())
    np.savez(out, image=np.concatenate(image), text=np.concatenate(text))


def directions(split_path: str) -> list[tuple[str, str, np.ndarray]]:
    """(target, reference, scored rows) of the real test's two directions, and of the
    held-out control's two halves (alternate held-out records, in row order)."""
    held = data.set_rows(split_path, "heldout")
    return [("A", "B", data.set_rows(split_path, "A")), ("B", "A", data.set_rows(split_path, "B")),
            ("A", "B", held[0::2]), ("B", "A", held[1::2])]


def searched(emb: dict, halves, truths: list[np.ndarray], public: np.ndarray, search: str,
             k: int, device: str) -> list[tuple[np.ndarray, ...]]:
    """Per direction: the target's and the reference's k nearest public records of each
    scored caption (`search`: by image or by caption), and the records' true objects."""
    base = "image" if search == "t2i" else "text"
    return [(*(attack.neighbours(emb[m]["text"][scored], emb[m][base][public], k, device)
               for m in (target, reference)), true)
            for (target, reference, scored), true in zip(halves, truths)]


def intervals(found, public_objects: np.ndarray, k: int, mode: str, n_boot: int,
              seed: int) -> dict[str, float]:
    """The 95 % bootstrap intervals of the swap-averaged precision and recall gaps (each
    direction resampled, the two averaged)."""
    boots = [attack.bootstrap(t, r, public_objects, true, k, mode, n_boot, seed)
             for t, r, true in found]
    out = {}
    for name in ("precision_gap", "recall_gap"):
        both = (boots[0][name] + boots[1][name]) / 2
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = (
            float(v) for v in np.nanquantile(both, [0.025, 0.975]))
    return out


def run_test(store: str, split_path: str, embeddings: dict[str, str], out: str, *,
             ks: list[int], modes: list[str], searches: list[str], unnamed_only: bool,
             n_boot: int, seed: int, meta: dict, device: str = "cpu") -> None:
    """The vlm_test stage: per control (none, held-out; the untrained control is this stage
    at epoch 0), search, k and prediction mode, the swap-averaged gaps with bootstrap
    intervals."""
    emb = {name: np.load(path) for name, path in embeddings.items()}
    records, public = data.Records(store), data.set_rows(split_path, "public")
    public_objects = records.objects(public)
    plan, rows = directions(split_path), []
    for control, halves in (("none", plan[:2]), ("heldout", plan[2:])):
        truths = [records.objects(scored, unnamed_only) for _, _, scored in halves]
        for search in searches:
            found = searched(emb, halves, truths, public, search, max(ks), device)
            averaged = attack.swapped(*(attack.direction(t, r, public_objects, true, ks, modes)
                                        for t, r, true in found))
            rows += [{**meta, "control": control, "search": search, "k": k, "mode": mode,
                      **averaged[k, mode],
                      **intervals(found, public_objects, k, mode, n_boot, seed)}
                     for k in ks for mode in modes]
    with open(out, "w") as f:
        json.dump(rows, f, indent=1)


def run_summary(paths: list[str], out: str) -> None:
    """The vlm_summary stage: every test row, `test` vlm; the epoch-0 rows of the real test
    are the untrained control (its held-out rows are dropped: two untrained models)."""
    import pandas as pd
    rows = [row for path in paths for row in json.loads(open(path).read())]
    table = pd.DataFrame(rows)
    untrained = table["epoch"] == 0
    table = table[~(untrained & (table["control"] == "heldout"))].copy()
    table.loc[table["epoch"] == 0, "control"] = "untrained"
    table.insert(0, "test", "vlm")
    table.to_csv(out, index=False)

