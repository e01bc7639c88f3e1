"""The vision-language test's model stages (definitions §14): train a CLIP-style model on
one set's records, embed every record's image and caption with it, and gather the tests'
rows (the test itself: `scoring`).

Training goes through dejavu's training loop (`training.loop.train`: resume states,
checkpoints, the method registry): the images are the set's, the labels the captions'
token ids. The untrained model (epoch 0, the untrained control) is the one the loop
starts from: the image tower of `init_model` and the text tower the CLIP method builds
under the run's seed.
"""

from __future__ import annotations

import json
import logging

import torch

from ..core.text import tokenize
from . import data

log = logging.getLogger(__name__)


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
              seed: int, method: str, backbone: str, width: int, projector: list[int],
              image_size: int, epochs: int, batch_size: int, lr: float, weight_decay: float,
              warmup_epochs: int, loss: dict, resume_dir: str | None = None,
              resume_every: int = 10, max_runtime: float | None = None, processes: int = 1,
              threads: int = 1, device: str = "auto") -> None:
    """The vlm_train stage: the untrained model (epoch 0) and the trained one at each other
    epoch of `out_paths` (vlm.train.checkpoints and the last), in `processes` data-parallel
    processes (`training.train.train_processes`: each reads its slice of every batch; the
    CLIP-style losses gather the embeddings of the whole batch, so two processes train as
    one does). With `max_runtime` (minutes from now) it may stop early at a resume state
    (OutOfTime): run it again to continue (the rule's retries)."""
    from ..core.deadline import deadline_after
    from ..core.models import save_checkpoint
    from ..data.split import SetImages
    from ..training.train import SaveTo, TrainConfig, init_model, run_seed, train_processes
    deadline = deadline_after(max_runtime)
    torch.set_num_threads(threads)
    if max(out_paths) != epochs:
        raise ValueError(f"the last epoch saved ({max(out_paths)}) is not the last ({epochs})")
    records, rows = data.Records(store), data.set_rows(split_path, subset)
    images = SetImages(f"{store}/images.zarr", split_path, subset)  # read a batch at a time
    ids = tokenize(records.captions(rows), loss["context"], loss["buckets"])
    save_checkpoint(out_paths[0], untrained(method, backbone, projector, width, image_size,
                                            seed, subset, loss), epoch=0)
    trained = {e: path for e, path in out_paths.items() if e > 0}
    cfg = TrainConfig(method=method, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr,
                      weight_decay=weight_decay, warmup_epochs=warmup_epochs,
                      seed=run_seed(seed, subset), device=device,
                      checkpoints=tuple(sorted(trained)), resume_every=resume_every)
    model = init_model(backbone, projector, width, run_seed(seed, subset),
                       image_size=image_size)
    log.info("training %s on the %d records of set %s, %d epochs, %d process(es)", method,
             len(rows), subset, epochs, processes)
    train_processes(processes, model, images, cfg, SaveTo(trained), resume_dir, ids,
                    threads=threads, deadline=deadline)


@torch.inference_mode()
def run_embed(store: str, checkpoint: str, out: str, *, batch_size: int = 256,
              chunk_rows: int = 65_536, device: str = "auto", threads: int = 1) -> None:
    """The vlm_embed stage: every record's image embedding (the projector output) and
    caption embedding (the text tower), float32, in store row order, streamed to a Zarr
    store (`embeddings.Writer`) `chunk_rows` at a time."""
    from ..core.models import load_checkpoint, pick_device
    from .embeddings import write_blocks
    torch.set_num_threads(threads)
    dev = pick_device(device)
    model = load_checkpoint(checkpoint)[0].to(dev).eval()
    arch, records = model.arch["text"], data.Records(store)

    def blocks():
        for lo in range(0, len(records.rows), batch_size):
            part = records.rows[lo:lo + batch_size]
            x = torch.from_numpy(records.images(part)).to(dev).permute(0, 3, 1, 2)
            ids = tokenize(records.captions(part), arch["context"], arch["buckets"])
            yield {"image": model(x.float() / 255)[1].float().cpu().numpy(),
                   "text": model.text(torch.from_numpy(ids).to(dev)).float().cpu().numpy()}
    write_blocks(out, len(records.rows), blocks(), chunk_rows)


def run_summary(paths: list[str], out: str) -> None:
    """The vlm_summary stage: every test row, `test` vlm; the epoch-0 rows of the real test
    are the untrained control (its held-out rows are dropped: two untrained models)."""
    import pandas as pd
    rows = [row for path in paths for row in json.loads(open(path).read())["rows"]]
    table = pd.DataFrame(rows)
    untrained = table["epoch"] == 0
    table = table[~(untrained & (table["control"] == "heldout"))].copy()
    table.loc[table["epoch"] == 0, "control"] = "untrained"
    table.insert(0, "test", table.pop("test"))  # vlm, or vlm_onemodel
    table.to_csv(out, index=False)

