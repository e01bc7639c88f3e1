"""RCDM (definitions §7): a diffusion decoder that draws an image from an SSL embedding.

Modules: `decoder` (the model, its training loop, DDIM sampling), `decoder_train` and
`decoder_sample` (the two rules' stages). The names below are the package's public ones.

The decoder is diffusers' `UNet2DModel` conditioned the way RCDM conditions it: the
embedding (backbone and projector concatenated, standardised with the public set's mean
and spread) goes through one linear map into the timestep-embedding space and is added to
the timestep embedding (the UNet's identity class embedding); every residual block then
scales and shifts its second GroupNorm with it (`resnet_time_scale_shift="scale_shift"`).
It is trained on the public set X with the DDPM noise-prediction loss and sampled with DDIM
from seeded noise, from an exponential moving average (EMA) of its weights.

Training keeps a resume state every `checkpoint_every` steps; with a fixed seed on CPU a
killed and rerun job ends with the weights of an uninterrupted one. On CUDA the UNet runs
under bf16 autocast.
"""

from .decoder import (Decoder, DecoderConfig, ema_decay, groups, load_decoder, load_decoder_of,
                      options_config, sample, sample_seed, save_decoder, train_decoder)
from .decoder_sample import (attacked_examples, balanced_rows, embed_images, mean_embeddings,
                             retrieval_ranks, run_sample)
from .decoder_train import conditioning, run_train

__all__ = ["Decoder", "DecoderConfig", "attacked_examples", "balanced_rows", "conditioning",
           "ema_decay", "embed_images", "groups", "load_decoder", "load_decoder_of",
           "mean_embeddings", "options_config", "retrieval_ranks", "run_sample",
           "run_train", "sample", "sample_seed", "save_decoder", "train_decoder"]
