"""VLMs trained elsewhere (definitions §14): an OpenCLIP model read from a local checkpoint,
its image and text towers embedding every record as the vlm_embed stage's store does, so
that the tests attack it like a VLM trained here.

The architecture is an OpenCLIP model name, or a name given to a model configuration JSON
file (`model_config`, as OpenCLIP's own configs: embed_dim, vision_cfg, text_cfg). Images
are read from the records store, resized to the model's input side (bicubic, as OpenCLIP's
preprocessing) and normalised by its mean and standard deviation; captions go through the
model's own tokenizer. Nothing is downloaded: OpenCLIP is told a local file, and its
tokenizer's vocabulary ships in its wheel (`pip install dejavu-memorization[openclip]`).
"""

from __future__ import annotations

import logging

import torch

from . import data
from .embeddings import write_blocks

log = logging.getLogger(__name__)


def load(architecture: str, checkpoint: str, model_config: str | None = None):
    """(model in eval mode, tokenizer, input side, mean, std) of an OpenCLIP checkpoint."""
    try:
        import open_clip
    except ImportError as err:
        raise ImportError("vlm.external needs OpenCLIP: pip install "
                          "'dejavu-memorization[openclip]'") from err
    if model_config:  # OpenCLIP names a config after its file: a copy under the name
        import json
        import tempfile
        from pathlib import Path
        folder = Path(tempfile.mkdtemp(prefix="openclip-config-"))
        (folder / f"{architecture}.json").write_text(json.dumps(json.loads(
            Path(model_config).read_text())))
        open_clip.add_model_config(str(folder / f"{architecture}.json"))
    model = open_clip.create_model(architecture, pretrained=checkpoint, device="cpu")
    model.eval()
    cfg = model.visual.preprocess_cfg
    side = cfg["size"][0] if isinstance(cfg["size"], (tuple, list)) else cfg["size"]
    return (model, open_clip.get_tokenizer(architecture), int(side),
            torch.tensor(cfg["mean"]).view(1, 3, 1, 1), torch.tensor(cfg["std"]).view(1, 3, 1, 1))


@torch.inference_mode()
def run_embed(store: str, out: str, *, architecture: str, checkpoint: str,
              model_config: str | None = None, batch_size: int = 256,
              chunk_rows: int = 65_536, device: str = "auto", threads: int = 1) -> None:
    """The vlm_external_embed stage: every record's image and caption embedding by the
    OpenCLIP model, float32, in store row order (as `stages.run_embed`)."""
    from ..core.models import pick_device
    torch.set_num_threads(threads)
    dev = pick_device(device)
    model, tokenizer, side, mean, std = load(architecture, checkpoint, model_config)
    model, mean, std = model.to(dev), mean.to(dev), std.to(dev)
    records = data.Records(store)
    rows = records.rows
    log.info("embedding %d records with OpenCLIP %s (%s) at %d px", len(rows), architecture,
             checkpoint, side)

    def blocks():
        for lo in range(0, len(rows), batch_size):
            part = rows[lo:lo + batch_size]
            x = torch.from_numpy(records.images(part)).to(dev).permute(0, 3, 1, 2).float()
            x = torch.nn.functional.interpolate(x / 255, size=(side, side), mode="bicubic",
                                                align_corners=False).clamp(0, 1)
            ids = tokenizer(records.captions(part)).to(dev)
            yield {"image": model.encode_image((x - mean) / std).float().cpu().numpy(),
                   "text": model.encode_text(ids).float().cpu().numpy()}
    write_blocks(out, len(rows), blocks(), chunk_rows)
