r"""Run a torchvision checkpoint converted to vai_jax on a photograph and draw the result.

  python experiments/pretrained/main.py --name resnet50 --checkpoint resnet50-11ad3fa6.pth
  python experiments/pretrained/main.py --name maskrcnn_resnet50_fpn --checkpoint maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth
  python experiments/pretrained/main.py --name deeplabv3_resnet50 --checkpoint deeplabv3_resnet50_coco-cd0a2569.pth --image my.jpg

Writes ``<name>.png`` to ``--workdir`` and prints the top-5 classes, the detections or the
class fractions. Without ``--checkpoint`` it prints where to download the name's weights.
"""
import sys

from absl import app, flags, logging

from experiments.pretrained import run

_NAME = flags.DEFINE_string("name", None, "torchvision builder name (python -m vai_jax.weights "
                            "list), or a timm name such as resnet50.tv_in1k.", required=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "The checkpoint: .pth (needs torch), "
                                  ".safetensors or .npz.")
_IMAGE = flags.DEFINE_string("image", None, "A photograph (default: the bundled astronaut.jpg).")
_WORKDIR = flags.DEFINE_string("workdir", ".", "Output folder for <name>.png.")
_SIZE = flags.DEFINE_integer("size", None, "Input size: a classifier's crop, a segmenter's "
                             "shorter side, a detector's min_size (default: torchvision's).")
_SCORE = flags.DEFINE_float("score_threshold", 0.5, "Lowest detection score shown.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    try:
        out = run.run(_NAME.value, _CHECKPOINT.value, _WORKDIR.value, image=_IMAGE.value,
                      size=_SIZE.value, score_threshold=_SCORE.value)
    except (FileNotFoundError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(out["text"])
    print(f"done in {out['seconds']:.1f} s")


if __name__ == "__main__":
    app.run(main)
