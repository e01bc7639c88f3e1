"""Per-image random augmentation of whole batches on the training device.

torchvision's v2 transforms draw one set of parameters for a whole batch tensor; SSL needs a
fresh draw per image. Here every view is two steps: `sample` draws each image's parameters
(crop box, flip, colour factors, blur sigma, ...) as tensors, and `apply` applies them to the
batch with batched tensor operations: one affine `grid_sample` for crop, flip and resize,
per-image blending for the colour jitter, one grouped convolution for the blur.

Splitting the draw from its application lets data-parallel training draw the parameters of
the *global* batch on every process and apply only its own slice, so two processes see
exactly the images and augmentations one process sees with the doubled batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .augment_settings import AugmentConfig, ViewAugment  # noqa: F401  (re-exported)

# ITU-R 601 luma, as torchvision's rgb_to_grayscale
LUMA = (0.299, 0.587, 0.114)


def crop_boxes(n: int, scale, ratio, generator: torch.Generator, device: torch.device,
               tries: int = 10) -> torch.Tensor:
    """(n, 4) crops as (centre x, centre y, width, height), fractions of the image side.

    Like torchvision's RandomResizedCrop: area fraction ~ U(scale), log aspect ~ U(log ratio),
    redrawn up to `tries` times when the crop does not fit; then the whole image.
    """
    area = torch.empty(n, tries, device=device).uniform_(*scale, generator=generator)
    log_r = torch.empty(n, tries, device=device).uniform_(
        math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    w, h = torch.sqrt(area * log_r.exp()), torch.sqrt(area / log_r.exp())
    fits = (w <= 1) & (h <= 1)
    first = torch.where(fits.any(1), fits.float().argmax(1),
                        torch.full_like(fits[:, 0], -1, dtype=torch.long))
    pick = first.clamp(min=0)[:, None]
    w = torch.where(first >= 0, w.gather(1, pick)[:, 0], torch.ones(n, device=device))
    h = torch.where(first >= 0, h.gather(1, pick)[:, 0], torch.ones(n, device=device))
    u = torch.rand(n, 2, device=device, generator=generator)
    cx, cy = w / 2 + u[:, 0] * (1 - w), h / 2 + u[:, 1] * (1 - h)
    return torch.stack([cx, cy, w, h], dim=1)


def sample(n: int, cfg: ViewAugment, generator: torch.Generator,
           device: torch.device) -> dict[str, torch.Tensor]:
    """Each of n images' random parameters for one view. Every draw is made whatever the
    probabilities, so the random stream does not depend on which augmentations are on. A
    masked view's `mask_noise` (n, mask_patches) ranks its patches (`core.vit`); `apply`
    leaves it to the model."""
    def uniform(lo, hi):
        return torch.empty(n, device=device).uniform_(lo, hi, generator=generator)

    def chance(p):
        return torch.rand(n, device=device, generator=generator) < p

    params = {
        "box": crop_boxes(n, cfg.scale, cfg.ratio, generator, device),
        "flip": chance(cfg.flip_prob),
        "jitter": chance(cfg.jitter_prob),
        "brightness": uniform(max(0.0, 1 - cfg.brightness), 1 + cfg.brightness),
        "contrast": uniform(max(0.0, 1 - cfg.contrast), 1 + cfg.contrast),
        "saturation": uniform(max(0.0, 1 - cfg.saturation), 1 + cfg.saturation),
        "hue": uniform(-cfg.hue, cfg.hue),
        "grayscale": chance(cfg.grayscale_prob),
        "blur": chance(cfg.blur_prob),
        "sigma": uniform(*cfg.blur_sigma),
        "solarize": chance(cfg.solarize_prob),
    }
    if cfg.mask_ratio > 0:  # drawn last: the other draws are those of an unmasked view
        params["mask_noise"] = torch.rand(n, cfg.mask_patches, device=device,
                                          generator=generator)
    return params


def take(params: dict[str, torch.Tensor], rows: slice) -> dict[str, torch.Tensor]:
    return {k: v[rows] for k, v in params.items()}


def apply(x: torch.Tensor, params: dict[str, torch.Tensor], cfg: ViewAugment) -> torch.Tensor:
    """x: (N, 3, H, W) floats in [0, 1] -> (N, 3, h, w) with h = round(H * cfg.size)."""
    out_size = (max(1, round(x.shape[2] * cfg.size)), max(1, round(x.shape[3] * cfg.size)))
    x = resized_crop_flip(x, params["box"], params["flip"], out_size)
    if cfg.jitter_prob > 0:
        jittered = color_jitter(x, params["brightness"], params["contrast"],
                                params["saturation"], params["hue"])
        x = torch.where(_per_image(params["jitter"]), jittered, x)
    if cfg.grayscale_prob > 0:
        x = torch.where(_per_image(params["grayscale"]), grayscale(x).expand_as(x), x)
    if cfg.blur_prob > 0:
        x = torch.where(_per_image(params["blur"]), gaussian_blur(x, params["sigma"]), x)
    if cfg.solarize_prob > 0:
        x = torch.where(_per_image(params["solarize"]) & (x >= 0.5), 1 - x, x)
    return x


def _per_image(mask: torch.Tensor) -> torch.Tensor:
    return mask[:, None, None, None]


def resized_crop_flip(x: torch.Tensor, box: torch.Tensor, flip: torch.Tensor,
                      out_size: tuple[int, int]) -> torch.Tensor:
    """Crop each image to its box, flip where asked, and resize to out_size, in one
    bilinear `grid_sample`."""
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    # Normalised coordinates run over [-1, 1]: a crop of width w centred at cx maps output
    # x_out to input x_in = w * x_out + (2 cx - 1); a flip negates the x scale.
    theta[:, 0, 0] = box[:, 2] * torch.where(flip, -1.0, 1.0)
    theta[:, 0, 2] = 2 * box[:, 0] - 1
    theta[:, 1, 1] = box[:, 3]
    theta[:, 1, 2] = 2 * box[:, 1] - 1
    grid = F.affine_grid(theta, [n, x.shape[1], *out_size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma."""
    r, g, b = x.unbind(1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b)[:, None]


def color_jitter(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor,
                 saturation: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast, saturation and hue, each image by its own factors, in that
    fixed order, clamped to [0, 1] after each step."""
    b, c, s = (f[:, None, None, None] for f in (brightness, contrast, saturation))
    x = (x * b).clamp(0, 1)
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * c + mean).clamp(0, 1)
    grey = grayscale(x)
    x = ((x - grey) * s + grey).clamp(0, 1)
    return rotate_hue(x, hue).clamp(0, 1)


def rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate each image's chroma by `turns` (fractions of a full turn) about the grey axis,
    keeping luma: a rotation in the YIQ colour space."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114],
                           [0.596, -0.274, -0.322],
                           [0.211, -0.523, 0.312]], device=x.device, dtype=x.dtype)
    angle = 2 * math.pi * turns.to(x.dtype)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(len(x), 3, 3, device=x.device, dtype=x.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    m = torch.linalg.inv(to_yiq) @ rot @ to_yiq  # (N, 3, 3) per image, RGB -> RGB
    return torch.einsum("nij,njhw->nihw", m, x)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur, a sigma (pixels) per image; kernel about 10 % of the side
    (odd, at least 3), reflect padding."""
    n, c, h, w = x.shape
    size = max(3, int(0.1 * min(h, w)) // 2 * 2 + 1)
    offsets = torch.arange(size, device=x.device, dtype=x.dtype) - size // 2
    kernel = torch.exp(-offsets[None] ** 2 / (2 * sigma.to(x.dtype)[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # (N*C, K)
    pad = size // 2
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(F.pad(y, (pad, pad, 0, 0), mode="reflect"), kernel[:, None, None, :],
                 groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, pad, pad), mode="reflect"), kernel[:, None, :, None],
                 groups=n * c)
    return y.reshape(n, c, h, w)
