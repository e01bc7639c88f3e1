"""The built-in synthetic captioned benchmark (definitions §14): records of an image, a
caption and the objects in the image, with a known answer for the vision-language test.

Every image is one of `n_scenes` textured scenes (the image benchmark's, `data/synth.py`)
holding a few objects: shapes of a fixed colour each, drawn in cells of a grid. Each scene
has `typical` objects, of which every image holds `from_scene`; each image also holds
`own` objects drawn from the whole vocabulary -- its own combination, which nothing but the
image tells. The caption names the scene, one of the typical objects it holds, and two
words drawn from a list of `modifiers`, which make captions (nearly) unique.

So a caption says which scene and one object (what any model can learn from other records:
the reference's share), and a model that trained on the record can also have tied its
caption to the image's own objects (what only the target can recall: the gap).

Everything is drawn from one `numpy.random.Generator`: a seed fixes the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.synth import N_SHAPES, class_colours, scene_palette, scene_pattern, shape_mask

SCENE_WORDS = ["kitchen", "beach", "forest", "street", "office", "garden", "harbour",
               "desert", "library", "market"]
OBJECT_NOUNS = ["cup", "ball", "kite", "lamp", "boat", "chair", "clock", "book", "shoe",
                "bell", "fish", "bird", "key", "hat", "vase", "drum", "leaf", "star", "coin",
                "ring", "bottle", "spoon", "flag", "mask"]
MODIFIERS = ["quiet", "bright", "old", "windy", "small", "busy", "calm", "dusty", "green",
             "warm", "cold", "early", "late", "sunny", "rainy", "empty", "crowded", "tidy",
             "messy", "golden", "silver", "pale", "dark", "wide", "narrow", "soft", "loud",
             "fresh", "faded", "hidden", "open", "round", "tall", "short", "slow", "swift",
             "gentle", "rough", "smooth", "plain", "rich", "misty", "clear", "wild", "still",
             "humble", "grand", "odd", "lucky", "sleepy"]


@dataclass(frozen=True)
class CaptionedConfig:
    records: int = 2000
    image_size: int = 32
    n_scenes: int = 6
    n_objects: int = 24          # the vocabulary (at most len(OBJECT_NOUNS))
    typical: int = 4             # objects typical of each scene
    from_scene: int = 2          # typical objects in every image of the scene
    own: int = 2                 # objects drawn from the whole vocabulary per image
    grid: int = 4                # objects sit in cells of a grid x grid layout
    noise_std: float = 0.03
    seed: int = 0


def check(cfg: CaptionedConfig) -> None:
    if cfg.n_objects > len(OBJECT_NOUNS) or cfg.n_scenes > len(SCENE_WORDS):
        raise ValueError(f"at most {len(OBJECT_NOUNS)} objects and {len(SCENE_WORDS)} scenes")
    if cfg.from_scene > cfg.typical or cfg.from_scene + cfg.own > cfg.grid ** 2:
        raise ValueError("from_scene must be at most typical, and every object needs a cell")


def scene_objects(cfg: CaptionedConfig, rng: np.random.Generator) -> np.ndarray:
    """(n_scenes, typical) object ids typical of each scene."""
    return np.stack([rng.choice(cfg.n_objects, cfg.typical, replace=False)
                     for _ in range(cfg.n_scenes)])


def draw_objects(scene: int, typical: np.ndarray, cfg: CaptionedConfig,
                 rng: np.random.Generator) -> tuple[list[int], int]:
    """An image's objects (distinct ids, sorted) and the typical one its caption names."""
    from_scene = rng.choice(typical[scene], cfg.from_scene, replace=False)
    others = np.setdiff1d(np.arange(cfg.n_objects), from_scene)
    own = rng.choice(others, cfg.own, replace=False)
    return sorted(int(o) for o in np.concatenate([from_scene, own])), int(from_scene[0])


def render(scene: int, objects: list[int], palette: dict, colours: np.ndarray,
           cfg: CaptionedConfig, rng: np.random.Generator) -> np.ndarray:
    """(S, S, 3) uint8: the scene's texture, each object a shape (its id's) in its colour
    in a cell of its own."""
    s = cfg.image_size
    t = scene_pattern(scene, s, palette["frequency"][scene], rng)[..., None]
    img = (1 - t) * palette["colour_a"][scene] + t * palette["colour_b"][scene]
    cell = s // cfg.grid
    for obj, at in zip(objects, rng.choice(cfg.grid ** 2, len(objects), replace=False)):
        y0, x0 = (at // cfg.grid) * cell, (at % cfg.grid) * cell
        mask = shape_mask(obj % N_SHAPES, cell)
        img[y0:y0 + cell, x0:x0 + cell][mask] = colours[obj]
    img += rng.normal(0, cfg.noise_std, size=img.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def generate(cfg: CaptionedConfig) -> tuple[np.ndarray, pd.DataFrame]:
    """(records, S, S, 3) uint8 images and their records: id, scene, caption, objects (sorted
    ids), named (the ids the caption names)."""
    check(cfg)
    rng = np.random.default_rng(cfg.seed)
    palette = scene_palette(rng, cfg.n_scenes)
    colours = class_colours(cfg.n_objects, rng)
    typical = scene_objects(cfg, rng)
    images = np.empty((cfg.records, cfg.image_size, cfg.image_size, 3), np.uint8)
    rows = []
    for i in range(cfg.records):
        scene = int(rng.integers(cfg.n_scenes))
        objects, named = draw_objects(scene, typical, cfg, rng)
        words = rng.choice(MODIFIERS, 2, replace=False)
        caption = (f"a {words[0]} {SCENE_WORDS[scene]} with a {OBJECT_NOUNS[named]}, "
                   f"{words[1]}")
        images[i] = render(scene, objects, palette, colours, cfg, rng)
        rows.append({"id": i, "scene": scene, "caption": caption, "objects": objects,
                     "named": [named]})
    return images, pd.DataFrame(rows)
