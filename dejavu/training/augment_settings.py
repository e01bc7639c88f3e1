"""What an augmentation does, as settings: one view's (`ViewAugment`) and an SSL method's
pair of global views (`AugmentConfig`). Torch-free, so a config is checked without
importing torch; `dejavu.training.augment` draws and applies them."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class ViewAugment:
    """What one view does to every image; each image gets its own random draw."""
    scale: tuple[float, float] = (0.08, 1.0)    # random-resized-crop area fraction
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # and aspect ratio
    flip_prob: float = 0.5
    jitter_prob: float = 0.8                    # colour jitter, then each factor:
    brightness: float = 0.4                     #   x * U(1 - b, 1 + b)
    contrast: float = 0.4                       #   blend with the image's mean grey
    saturation: float = 0.2                     #   blend with the pixel's grey
    hue: float = 0.1                            #   rotate the chroma by U(-h, h) turns
    grayscale_prob: float = 0.2
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # pixels, as torchvision's GaussianBlur
    solarize_prob: float = 0.0                  # invert pixels above 0.5
    size: float = 1.0                           # output side / input side (multi-crop)
    mask_ratio: float = 0.0                     # patches removed (a masked autoencoder's
    mask_patches: int = 0                       #   view), of this many


@dataclass(frozen=True)
class AugmentConfig:
    """The two global views of an SSL method; `blur_prob` and `solarize_prob` are per view
    (the asymmetric BYOL recipe: blur always on view 1, rarely on view 2, solarize view 2)."""
    scale_min: float = 0.08
    scale_max: float = 1.0
    ratio_min: float = 3 / 4
    ratio_max: float = 4 / 3
    flip_prob: float = 0.5
    jitter_prob: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_prob: float = 0.2
    blur_prob: tuple[float, float] = (1.0, 0.1)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_prob: tuple[float, float] = (0.0, 0.2)

    @classmethod
    def from_options(cls, options: dict) -> AugmentConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown augmentation options {sorted(unknown)}; known: "
                             f"{sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})

    def view(self, i: int, **changes) -> ViewAugment:
        """View i (0 or 1) of the pair, with optional changes (e.g. a multi-crop local view)."""
        base = ViewAugment(
            scale=(self.scale_min, self.scale_max), ratio=(self.ratio_min, self.ratio_max),
            flip_prob=self.flip_prob, jitter_prob=self.jitter_prob,
            brightness=self.brightness, contrast=self.contrast, saturation=self.saturation,
            hue=self.hue, grayscale_prob=self.grayscale_prob, blur_prob=self.blur_prob[i],
            blur_sigma=self.blur_sigma, solarize_prob=self.solarize_prob[i])
        return replace(base, **changes)
