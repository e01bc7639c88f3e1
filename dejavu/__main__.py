"""Command line: the library's stages without Snakemake.

    python -m dejavu synth OUT_DIR [--images-per-class N] [--seed S]
    python -m dejavu score KNN_A KNN_B OUT.json [--epoch E] [--p 0.2]
    python -m dejavu import-model WEIGHTS OUT.pt --architecture NAME [--projector 8192 ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .data.synth import SynthConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dejavu", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser("synth", help="write the synthetic benchmark as a dataset store")
    synth.add_argument("out_dir", type=Path)
    synth.add_argument("--classes", type=int, default=SynthConfig.n_classes)
    synth.add_argument("--images-per-class", type=int, default=SynthConfig.images_per_class)
    synth.add_argument("--image-size", type=int, default=SynthConfig.image_size)
    synth.add_argument("--correlation", type=float, default=SynthConfig.correlation)
    synth.add_argument("--seed", type=int, default=SynthConfig.seed)
    score = sub.add_parser("score", help="déjà vu score of two k-NN tables (models A and B)")
    score.add_argument("knn_a")
    score.add_argument("knn_b")
    score.add_argument("out_json")
    score.add_argument("--epoch", type=int, default=1, help="0 marks untrained models")
    score.add_argument("--p", type=float, default=0.2)
    score.add_argument("--bootstrap", type=int, default=1000)
    imported = sub.add_parser("import-model", help="check that a model trained elsewhere "
                              "loads (weights-only, every key accounted for) and save it in "
                              "dejavu's checkpoint format")
    imported.add_argument("weights")
    imported.add_argument("out")
    imported.add_argument("--architecture", required=True,
                          help="convnet, resnet18, ..., torchvision.<name> or timm.<name>")
    imported.add_argument("--projector", type=int, nargs="*", default=None,
                          help="output sizes of the projector MLP (none: no projector)")
    imported.add_argument("--normalize", choices=["dejavu", "imagenet"], default=None)
    imported.add_argument("--key", default="auto")
    imported.add_argument("--prefix", default="auto")
    imported.add_argument("--image-size", type=int, default=32)
    imported.add_argument("--width", type=int, default=16)
    args = parser.parse_args(argv)

    if args.command == "synth":
        from .data import synth as stage
        args.out_dir.mkdir(parents=True, exist_ok=True)
        stage.run(str(args.out_dir / "images.zarr"), str(args.out_dir / "index.parquet"),
                  classes=args.classes, images_per_class=args.images_per_class,
                  image_size=args.image_size, correlation=args.correlation, seed=args.seed)
    elif args.command == "import-model":
        from .training import external
        external.run(args.weights, args.out, architecture=args.architecture,
                     projector=args.projector, normalize=args.normalize, key=args.key,
                     prefix=args.prefix, image_size=args.image_size, width=args.width)
        print(f"{args.weights} loads as {args.architecture}; saved {args.out}")
    else:
        from .attack import score as stage
        stage.run(args.knn_a, args.knn_b, args.out_json,
                  args.out_json.removesuffix(".json") + ".curves.parquet", epoch=args.epoch,
                  p=args.p, p_grid=[args.p, 1.0], n_boot=args.bootstrap, seed=0,
                  combination={})
        print(Path(args.out_json).read_text())


if __name__ == "__main__":
    main()
