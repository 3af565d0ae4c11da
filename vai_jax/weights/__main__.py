"""Command line: convert a torchvision / timm checkpoint to a vai_jax weights file.

    python -m vai_jax.weights convert resnet50 resnet50-11ad3fa6.pth out/resnet50.msgpack
    python -m vai_jax.weights convert resnet50.tv_in1k model.safetensors out/resnet50.msgpack
    python -m vai_jax.weights convert fcn_resnet50 fcn_resnet50_coco-1167a1af.pth out/fcn.msgpack
    python -m vai_jax.weights list            # supported names per task
    python -m vai_jax.weights list --urls     # and torchvision's download address of each

Load the result with ``vai_jax.weights.load(path)`` and build the model with
``vai_jax.weights.model_for(name)`` (plus ``num_classes=`` when it is not 1000).
"""
from __future__ import annotations

import argparse
import sys

import jax
import numpy as np


def _num_classes(model) -> int:
    # A Segmenter carries it in its head.
    return model.num_classes if hasattr(model, "num_classes") else model.head.num_classes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vai_jax.weights",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="convert a checkpoint to a Flax msgpack file")
    conv.add_argument("name", help="torchvision builder name (resnet50) or timm name "
                      "(resnet50.tv_in1k)")
    conv.add_argument("source", help="checkpoint: .pth/.pt (needs torch), .safetensors or .npz")
    conv.add_argument("output", help="the weights file to write (e.g. out/resnet50.msgpack)")
    lst = sub.add_parser("list", help="list the supported torchvision names and timm "
                         "architectures")
    lst.add_argument("--urls", action="store_true",
                     help="also print torchvision's download URL of each name's default weights")
    args = parser.parse_args(argv)

    from vai_jax import weights

    if args.command == "list":
        for task, names in (("classification", weights.SUPPORTED_CLASSIFICATION),
                            ("detection", weights.SUPPORTED_DETECTION),
                            ("segmentation", weights.SUPPORTED_SEGMENTATION)):
            print(f"torchvision {task}:", " ".join(names))
        print("timm (any pretrained tag, e.g. resnet50.tv_in1k):",
              " ".join(weights.SUPPORTED_TIMM))
        if args.urls:
            for name in weights.SUPPORTED:
                print(f"{name} {weights.URLS[name]}")
        return 0
    try:
        model, variables = weights.from_torchvision(args.name, args.source)
    except (ValueError, ImportError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    path = weights.save(args.output, variables)
    count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables["params"]))
    classes, default = _num_classes(model), _num_classes(weights.model_for(args.name))
    print(f"{args.name}: {count:,} parameters, {classes} classes -> {path}")
    print(f"load: model = vai_jax.weights.model_for({args.name!r}"
          f"{'' if classes == default else f', num_classes={classes}'}); "
          f"variables = vai_jax.weights.load({path!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
