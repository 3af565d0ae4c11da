r"""Point supervision (Bearman et al. 2016, "What's the point: semantic segmentation with point
supervision", ECCV): the segmentation experiment's FCN-8s trained on the built-in shapes
(64x64, 7 classes) from full masks, from image-level labels alone, from one point per object
instance plus one background point, and with a simulated objectness prior; mIoU against the
annotation cost.

  python experiments/point_supervision/main.py --workdir W --config experiments/point_supervision/configs/default.py

Expected (256 test images; 2-core CPU shared with other jobs, load average 2.8-7.3,
2026-12-03: 701 s wall, 484 s process CPU)::

  | run               | images | pixels / image | annotation hours | mIoU  | object IoU |
  | full              | 4,000  | 4,096          | 266.3            | 0.477 | 0.665      |
  | full_budget       |   369  | 4,096          |  24.6            | 0.264 | 0.533      |
  | image             | 4,000  |     0          |  22.2            | 0.121 | 0.006      |
  | image_objectness  | 4,000  |     0          |  22.2            | 0.160 | 0.152      |
  | points            | 4,000  |   4.5          |  24.6            | 0.338 | 0.566      |
  | points_objectness | 4,000  |   4.5          |  24.6            | 0.361 | 0.609      |

``:runlocal`` — 32x32, the points + objectness run only, a few steps, tiny widths: a smoke
test.
"""
import ml_collections

from experiments.segmentation.configs import default as segmentation


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in (None, "", "runlocal"):
        raise ValueError(f"unknown config variant {arg!r}; use 'runlocal' or nothing")
    # The segmentation experiment's data, networks and recipe; one network for every run.
    c = segmentation.get_config(arg or None)
    c.model = "fcn8s"
    # Trained in this order. Each run's loss terms (vai_jax.segmentation.losses.
    # weak_segmentation_loss) and the annotation it reads:
    c.runs = ("full", "full_budget", "image", "image_objectness", "points",
              "points_objectness")
    c.terms = ml_collections.ConfigDict(dict(
        full=("full",), full_budget=("full",), image=("image",),
        image_objectness=("image", "objectness"), points=("image", "point"),
        points_objectness=("image", "point", "objectness")))
    c.annotation = ml_collections.ConfigDict(dict(
        full="full", full_budget="full", image="image", image_objectness="image",
        points="points", points_objectness="points"))
    # Annotation seconds per image measured by Bearman et al. (2016) on PASCAL VOC 2012: full
    # masks 239.7, image-level labels 20.0 (1 s per class), one point per class 22.1.
    # full_budget trains on the first N * points / full training images: the full masks
    # that the point annotation's time would buy.
    c.seconds_per_image = ml_collections.ConfigDict(dict(full=239.7, image=20.0, points=22.1))
    c.point_seed = 0                 # the simulated clicks: default_rng([point_seed, index])
    c.background_points = 1
    # Objectness prior: the object mask blurred by a Gaussian of `sigma` pixels, mapped to
    # [floor, 1 - floor] (vai_jax.segmentation.weak_labels.objectness_prior).
    c.objectness = ml_collections.ConfigDict(dict(sigma=3.0, floor=0.0))
    c.num_figure_examples = 6
    if arg == "runlocal":
        c.runs = ("points_objectness",)
        c.num_steps = 4
        c.num_train_examples = 64
        c.num_test_examples = 16
        c.num_figure_examples = 2
    return c
