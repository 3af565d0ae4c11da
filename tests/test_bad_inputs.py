"""Every public name of vai_jax has a bad-input case, and each case raises naming its argument.

The public names are those of each subpackage's ``__all__`` (or, for a subpackage without one,
the non-module names its ``__init__`` binds; for ``train``, ``data`` and ``viz``, whose
``__init__`` binds none, the functions and classes defined in each of their modules), plus
``vai_jax.create_model`` and ``vai_jax.list_models``. ``CASES`` maps each to a call that must
raise the given exception with a message containing the given text (the argument's name and,
where it matters, what was expected). Names without a case are listed in ``EXEMPT`` with the
reason; constants (non-callables) are exempt as a rule. A new public name fails
``test_every_public_name_has_a_bad_input_case`` until it gets a case or a stated exemption.

Eager calls only, on tiny inputs: the checks run before any heavy computation.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import os
import pkgutil
import types

import jax
import numpy as np
import pytest

import vai_jax

# --------------------------------------------------------------------------- public names
_MODULE_WALK = ("train", "data", "viz")  # subpackages whose __init__ binds no names


def _module_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [n for n, v in vars(module).items()
            if not n.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
            and getattr(v, "__module__", None) == module.__name__]


def public_names() -> dict[str, object]:
    """``{"vai_jax.sub.name": object}`` of every public name (see the module docstring)."""
    out = {f"vai_jax.{n}": getattr(vai_jax, n) for n in ("create_model", "list_models")}
    for sub in vai_jax.SUBPACKAGES:
        package = importlib.import_module(f"vai_jax.{sub}")
        if sub in _MODULE_WALK:
            for info in pkgutil.iter_modules(package.__path__, f"vai_jax.{sub}."):
                if info.name.endswith("__main__"):
                    continue
                module = importlib.import_module(info.name)
                out.update({f"{info.name}.{n}": getattr(module, n) for n in _module_names(module)})
            continue
        names = getattr(package, "__all__", None)
        if names is None:
            names = [n for n, v in vars(package).items()
                     if not n.startswith("_") and not isinstance(v, types.ModuleType)
                     and getattr(v, "__module__", "").startswith("vai_jax")]
        out.update({f"vai_jax.{sub}.{n}": getattr(package, n) for n in names
                    if not isinstance(getattr(package, n), types.ModuleType)})
    return out


# Inputs shared by the cases below.
KEY = jax.random.PRNGKey(0)
BOX = np.array([[0.0, 0.0, 4.0, 4.0]], np.float32)
NAN_BOX = np.array([[0.0, np.nan, 4.0, 4.0]], np.float32)


def _z(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


def _u8(*shape):
    return np.zeros(shape, np.uint8)


def _init(module, *inputs, **kwargs):
    return module.init(KEY, *inputs, **kwargs)


def _init_train(module, *inputs):
    return module.init(KEY, *inputs, train=False)


@functools.lru_cache(maxsize=None)
def _cnn():
    """A tiny PlainCNN and its variables (for the analysis tools)."""
    from vai_jax.analysis import PlainCNN

    model = PlainCNN(widths=(2, 2), pool_after=(1,), num_classes=2)
    return model, model.init(KEY, _z(1, 8, 8, 3), train=False)


def _with_env(name, value, fn):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        return fn()
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def _case(fn, error, text):
    return fn, error, text


# -------------------------------------------------------------------------------- cases
def _cases():
    from vai_jax import analysis, backbones, classification, colourisation, detection, nn, ops
    from vai_jax import pose, segmentation, weights
    from vai_jax.data import (affine, coco, coco_export, pipeline, segmentation_sources, shapes,
                              shapes_geometry, shapes_render, shapes_sequences, sources,
                              transforms)
    from vai_jax.train import (augment, checkpoint, curves, distributed, loop, metrics_writer,
                               optim, parallel, precision, regularization, state, step)
    from vai_jax.viz import draw, figures, grids, lines, tables

    V, E = ValueError, TypeError
    VT = (ValueError, TypeError)
    m = _cnn
    c = {}
    # vai_jax
    c["vai_jax.create_model"] = (lambda: vai_jax.create_model("resnet18", num_classes=True), E,
                                 "num_classes")
    # analysis
    c["vai_jax.analysis.count_params"] = (lambda: analysis.count_params({"w": "a"}), VT,
                                          "variables_or_params")
    c["vai_jax.analysis.human"] = (lambda: analysis.human("12"), E, "n")
    c["vai_jax.analysis.summarize"] = (lambda: analysis.summarize(m()[0], (1, 0, 8, 3)), V,
                                       "input_shape")
    c["vai_jax.analysis.AscentConfig"] = (lambda: analysis.AscentConfig(steps=0), V, "steps")
    c["vai_jax.analysis.maximise_activation"] = (
        lambda: analysis.maximise_activation(*m(), "nope", [0], input_shape=(8, 8, 3),
                                             train=False), V,
        "layer")
    c["vai_jax.analysis.class_maps"] = (lambda: analysis.class_maps(_z(2, 3), [0, 1]), V,
                                        "evidence")
    c["vai_jax.analysis.evidence_maps"] = (
        lambda: analysis.evidence_maps(*m(), _z(1, 8, 8, 3), feature="nope", train=False), V,
        "feature")
    c["vai_jax.analysis.conv_kernels"] = (lambda: analysis.conv_kernels("params"), E, "params")
    c["vai_jax.analysis.filter_images"] = (
        lambda: analysis.filter_images(_z(3, 3, 3, 2), normalise="max"), V, "normalise")
    c["vai_jax.analysis.first_layer_kernel"] = (
        lambda: analysis.first_layer_kernel(m()[1]["params"], "nope"), V, "layer")
    c["vai_jax.analysis.layer_outputs"] = (
        lambda: analysis.layer_outputs(*m(), _z(1, 8, 8, 3), ["nope"], train=False), V,
        "layers")
    c["vai_jax.analysis.layer_shapes"] = (
        lambda: analysis.layer_shapes(*m(), (1, 0, 8, 3), train=False), V, "input_shape")
    c["vai_jax.analysis.top_patches"] = (
        lambda: analysis.top_patches(*m(), "conv1", [0], _z(2, 8, 8, 3), k=0, train=False), V,
        "k")
    c["vai_jax.analysis.PlainCNN"] = (
        lambda: _init_train(analysis.PlainCNN(widths=(0,)), _z(1, 8, 8, 3)), V, "widths")
    c["vai_jax.analysis.probe_layers"] = (
        lambda: analysis.probe_layers(*m(), ["nope"], _z(2, 8, 8, 3), [0, 1], _z(2, 8, 8, 3),
                                      [0, 1], num_classes=2, train=False), V, "layers")
    c["vai_jax.analysis.probe_table"] = (lambda: analysis.probe_table({"a": {"b": 1}}), E,
                                         "results")
    c["vai_jax.analysis.train_linear_probe"] = (
        lambda: analysis.train_linear_probe(_z(2, 3), [0, 5], _z(2, 3), [0, 1], num_classes=2),
        V, "train_y")
    c["vai_jax.analysis.activation_scores"] = (
        lambda: analysis.activation_scores(*m(), _z(2, 8, 8, 3), ["nope"], train=False), V,
        "layers")
    c["vai_jax.analysis.prune_plain_cnn"] = (
        lambda: analysis.prune_plain_cnn(*m(), 1.5), V, "ratios")
    c["vai_jax.analysis.prune_resnet"] = (
        lambda: analysis.prune_resnet(backbones.create_model("resnet20_cifar"), {}, 0.5,
                                      method="random"), V, "method")
    c["vai_jax.analysis.prune_specs"] = (
        lambda: analysis.prune_specs(m()[1], {}, 0.5, method="random"), V, "method")
    c["vai_jax.analysis.kmeans_1d"] = (lambda: analysis.kmeans_1d(np.ones(4), 0), V,
                                       "num_clusters")
    c["vai_jax.analysis.model_size_bytes"] = (
        lambda: analysis.model_size_bytes({"params": {"w": "a"}}), E, "variables")
    c["vai_jax.analysis.quantise_params"] = (
        lambda: analysis.quantise_params(m()[1]["params"], 0), V, "bits")
    c["vai_jax.analysis.gradient_support"] = (
        lambda: analysis.gradient_support(lambda x: x, _z(1, 4, 4), [(0, 0)]), V, "x")
    c["vai_jax.analysis.layer_receptive_field"] = (
        lambda: analysis.layer_receptive_field(*m(), "nope", (1, 8, 8, 3), train=False), V,
        "layer")
    c["vai_jax.analysis.receptive_field"] = (
        lambda: analysis.receptive_field(lambda x: x, (8, 8, 3)), V, "input_shape")
    c["vai_jax.analysis.freeze"] = (
        lambda: analysis.freeze(optim.make_optimizer("sgd", learning_rate=0.1),
                                m()[1]["params"], frozen=["nope*"]), V, "frozen")
    c["vai_jax.analysis.restore_by_name"] = (
        lambda: analysis.restore_by_name({}, {}, on_mismatch="ignore"), V, "on_mismatch")
    c["vai_jax.analysis.trainable_labels"] = (
        lambda: analysis.trainable_labels(m()[1]["params"], frozen=["nope*"]), V, "frozen")
    # backbones
    c["vai_jax.backbones.create_model"] = (
        lambda: backbones.create_model("resnet18", num_classes=-1), V, "num_classes")
    # classification
    c["vai_jax.classification.softmax_cross_entropy"] = (
        lambda: classification.softmax_cross_entropy(_z(2, 3), {"label": np.array([0, 3])}), V,
        "labels")
    c["vai_jax.classification.topk_accuracy"] = (
        lambda: classification.topk_accuracy(_z(2, 3), np.array([0, 1]), ks=(0,)), V, "ks")
    c["vai_jax.classification.topk_correct"] = (
        lambda: classification.topk_correct(_z(2, 3), np.array([0, 5])), V, "labels")
    c["vai_jax.classification.topk_counts"] = (
        lambda: classification.topk_counts(_z(2, 3), np.array([0, 1]), mask=np.ones(3)), V,
        "mask")
    # colourisation
    c["vai_jax.colourisation.ColourisationNet"] = (
        lambda: _init_train(colourisation.ColourisationNet(), _z(1, 8, 8)), V, "x")
    c["vai_jax.colourisation.ab_squared_error"] = (
        lambda: colourisation.ab_squared_error(_z(1, 4, 4, 2), _z(1, 4, 4, 3)), V, "targets")
    c["vai_jax.colourisation.colourisation_loss"] = (
        lambda: colourisation.colourisation_loss({"ab": _z(1, 4, 4, 2)},
                                                 {"image": _z(1, 4, 4, 3)}, ab_norm=0.0), V,
        "ab_norm")
    c["vai_jax.colourisation.colourisation_sums"] = (
        lambda: colourisation.colourisation_sums(
            {"ab": _z(1, 4, 4, 2), "logits": _z(1, 2)},
            {"image": _z(1, 4, 4, 3), "label": np.array([2])}, np.ones(1)), V, "labels")
    c["vai_jax.colourisation.fuse_global"] = (
        lambda: colourisation.fuse_global(_z(1, 4, 4, 2), _z(2, 3)), V, "global_vector")
    c["vai_jax.colourisation.grey_input"] = (
        lambda: colourisation.grey_input({"image": _z(1, 4, 4)}, KEY, train=False), V, "image")
    c["vai_jax.colourisation.join_lab"] = (
        lambda: colourisation.join_lab(_z(1, 4, 4, 2), _z(1, 4, 4, 2)), V, "luminance")
    c["vai_jax.colourisation.psnr"] = (
        lambda: colourisation.psnr(_z(1, 4, 4, 3), _z(1, 4, 4, 3), max_value=0.0), V,
        "max_value")
    c["vai_jax.colourisation.split_lab"] = (lambda: colourisation.split_lab(_z(1, 4, 4, 2)), V,
                                            "image")
    c["vai_jax.colourisation.summarise"] = (lambda: colourisation.summarise({"ab_abs": 1.0}),
                                            (KeyError, ValueError), "ab_sq")
    # data.affine
    c["vai_jax.data.affine.translation_matrix"] = (
        lambda: affine.translation_matrix(np.nan, 0.0), V, "tx")
    c["vai_jax.data.affine.scale_matrix"] = (lambda: affine.scale_matrix(0.0, 1.0), V, "sx")
    c["vai_jax.data.affine.rotation_matrix"] = (
        lambda: affine.rotation_matrix(np.inf), V, "angle_deg")
    c["vai_jax.data.affine.hflip_matrix"] = (lambda: affine.hflip_matrix(-1.0), V, "width")
    c["vai_jax.data.affine.crop_resize_matrix"] = (
        lambda: affine.crop_resize_matrix(0, 0, 0, 4, (4, 4)), V, "crop_w")
    c["vai_jax.data.affine.warp_image"] = (
        lambda: affine.warp_image(_z(4, 4, 3), np.eye(2), (4, 4)), V, "matrix")
    c["vai_jax.data.affine.warp_masks"] = (
        lambda: affine.warp_masks(_z(1, 4, 4), np.eye(3), (0, 4)), V, "out_size")
    c["vai_jax.data.affine.transform_points"] = (
        lambda: affine.transform_points(_z(3, 1), np.eye(3)), V, "points")
    c["vai_jax.data.affine.flip_permutation_from_pairs"] = (
        lambda: affine.flip_permutation_from_pairs([(0, 5)], 3), V, "flip_pairs")
    c["vai_jax.data.affine.transform_keypoints"] = (
        lambda: affine.transform_keypoints(_z(1, 2, 2), np.eye(3), (4, 4)), V, "keypoints")
    c["vai_jax.data.affine.transform_boxes"] = (
        lambda: affine.transform_boxes(_z(1, 3), np.eye(3), (4, 4)), V, "boxes")
    c["vai_jax.data.affine.masks_to_boxes"] = (lambda: affine.masks_to_boxes(_z(4, 4)), V,
                                               "masks")
    c["vai_jax.data.affine.apply_affine"] = (
        lambda: affine.apply_affine({"image": _z(4, 4, 3)}, np.eye(3), (4, -4)), V, "out_size")
    # data.coco / coco_export
    c["vai_jax.data.coco.validate_coco"] = (
        lambda: coco.validate_coco({"images": [], "categories": [],
                                    "annotations": [{"id": 3, "image_id": 1}]}), V,
        "annotation id 3: missing 'bbox'")
    c["vai_jax.data.coco.load_coco_json"] = (lambda: coco.load_coco_json("/nonexistent.json"),
                                             FileNotFoundError, "annotation_file")
    c["vai_jax.data.coco.CocoSource"] = (lambda: coco.CocoSource("/nonexistent.json", "/"),
                                         FileNotFoundError, "annotation_file")
    c["vai_jax.data.coco_export.coco_categories"] = (
        lambda: coco_export.coco_categories(class_names=("a", "b"), keypoint_names=(("x",),)),
        V, "keypoint_names")
    c["vai_jax.data.coco_export.record_annotations"] = (
        lambda: coco_export.record_annotations({"boxes": _z(2, 4), "classes": np.zeros(3, int)},
                                               1, 1), V, "classes")
    c["vai_jax.data.coco_export.to_coco"] = (
        lambda: coco_export.to_coco([], batch_size=0), V, "batch_size")
    c["vai_jax.data.coco_export.export_coco"] = (
        lambda: coco_export.export_coco([], "", progress=False), V, "path")
    # data.pipeline
    c["vai_jax.data.pipeline.pad_objects"] = (
        lambda: pipeline.pad_objects({}, 2, on_overflow="truncate"), V, "on_overflow")
    c["vai_jax.data.pipeline.check_record"] = (
        lambda: pipeline.check_record({"label": np.int32(4)}, 3), V, "label")
    c["vai_jax.data.pipeline.per_host_batch_size"] = (
        lambda: pipeline.per_host_batch_size(6, 4), V, "batch_size")
    c["vai_jax.data.pipeline.stack_records"] = (
        lambda: pipeline.stack_records([{"a": _z(2)}, {"a": _z(3)}]), V, "'a'")
    c["vai_jax.data.pipeline.make_loader"] = (
        lambda: pipeline.make_loader([{}], batch_size=1, seed=-1), V, "seed")
    # data.segmentation_sources
    c["vai_jax.data.segmentation_sources.normalise_segmentation"] = (
        lambda: segmentation_sources.normalise_segmentation({"image": _u8(4, 4, 2)}), V,
        "image")
    c["vai_jax.data.segmentation_sources.load_segmentation_source"] = (
        lambda: segmentation_sources.load_segmentation_source("nope_dataset"), V, "name")
    # data.shapes*
    c["vai_jax.data.shapes.ShapesDataset"] = (lambda: shapes.ShapesDataset("segment"), V,
                                              "task")
    c["vai_jax.data.shapes_geometry.local_outline"] = (
        lambda: shapes_geometry.local_outline(9), V, "class_id")
    c["vai_jax.data.shapes_geometry.inside"] = (
        lambda: shapes_geometry.inside(9, 0, 0, 1, 1, 0, 1, _z(2), _z(2)), V, "class_id")
    c["vai_jax.data.shapes_render.separate_luma"] = (
        lambda: shapes_render.separate_luma(_z(2, 2), 50.0, 5.0), V, "colours")
    c["vai_jax.data.shapes_render.empty_scene"] = (
        lambda: shapes_render.empty_scene(1, 1, 0, 8), V, "height")
    c["vai_jax.data.shapes_render.sample_example"] = (
        lambda: shapes_render.sample_example(np.random.default_rng(0),
                                             shapes_render.empty_scene(1, 1, 8, 8), 0,
                                             num_objects=2, single=False), V, "num_objects")
    c["vai_jax.data.shapes_render.full_masks"] = (lambda: shapes_render.full_masks("scene"), E,
                                                  "scene")
    c["vai_jax.data.shapes_render.keypoint_positions"] = (
        lambda: shapes_render.keypoint_positions("scene"), E, "scene")
    c["vai_jax.data.shapes_render.render_scene"] = (
        lambda: shapes_render.render_scene(shapes_render.empty_scene(1, 1, 8, 8),
                                           min_visible_pixels=-1), V, "min_visible_pixels")
    c["vai_jax.data.shapes_sequences.ShapesSequences"] = (
        lambda: shapes_sequences.ShapesSequences(num_frames=0), V, "num_frames")
    c["vai_jax.data.shapes_sequences.gesture_log_likelihoods"] = (
        lambda: shapes_sequences.gesture_log_likelihoods(np.array([[0, 99]])), V, "labels")
    # data.sources
    c["vai_jax.data.sources.to_rgb_uint8"] = (lambda: sources.to_rgb_uint8(_u8(4, 4, 2)), V,
                                              "image")
    c["vai_jax.data.sources.tfds_boxes_to_xyxy"] = (
        lambda: sources.tfds_boxes_to_xyxy(_z(2, 3), 4, 4), V, "bbox")
    c["vai_jax.data.sources.normalise_classification"] = (
        lambda: sources.normalise_classification({"image": _u8(4, 4, 3)}), KeyError, "label")
    c["vai_jax.data.sources.normalise_detection"] = (
        lambda: sources.normalise_detection({"image": _u8(4, 4, 5)}), V, "image")
    c["vai_jax.data.sources.base_name"] = (lambda: sources.base_name(3), E, "name")
    c["vai_jax.data.sources.NormalisedSource"] = (
        lambda: sources.NormalisedSource([1], "not callable"), E, "normaliser")
    c["vai_jax.data.sources.load_source"] = (lambda: sources.load_source("nope_dataset", "train"),
                                             V, "name")
    c["vai_jax.data.sources.ArraySource"] = (
        lambda: sources.ArraySource({"a": _z(2), "b": _z(3)}), V, "arrays")
    c["vai_jax.data.sources.GeneratedSource"] = (
        lambda: shapes.ShapesDataset(num_examples=2)["0"], E, "index")
    c["vai_jax.data.sources.SelectKeys"] = (lambda: sources.SelectKeys([{"a": 1}], ["b"])[0],
                                            (KeyError, V), "b")
    c["vai_jax.data.sources.RandomBatches"] = (
        lambda: sources.RandomBatches({"a": _z(4)}, batch_size=0), V, "batch_size")
    # data.transforms
    rec = {"image": np.zeros((4, 4, 3), np.uint8)}
    rng = np.random.default_rng(0)
    c["vai_jax.data.transforms.Compose"] = (lambda: transforms.Compose([1])(rec, rng), E,
                                            "transforms")
    c["vai_jax.data.transforms.RandomHorizontalFlip"] = (
        lambda: transforms.RandomHorizontalFlip(prob=1.5), V, "prob")
    c["vai_jax.data.transforms.RandomAffine"] = (
        lambda: transforms.RandomAffine(scale=(2.0, 1.0)), V, "scale")
    c["vai_jax.data.transforms.Resize"] = (lambda: transforms.Resize((0, 4)), V, "size")
    c["vai_jax.data.transforms.ResizeAndPad"] = (lambda: transforms.ResizeAndPad(-2), V, "size")
    c["vai_jax.data.transforms.CenterCrop"] = (lambda: transforms.CenterCrop(0), V, "size")
    c["vai_jax.data.transforms.RandomCrop"] = (lambda: transforms.RandomCrop((4, 0)), V, "size")
    c["vai_jax.data.transforms.RandomResizedCrop"] = (
        lambda: transforms.RandomResizedCrop((8, 8), scale=(0.0, 1.0)), V, "scale")
    c["vai_jax.data.transforms.ColorJitter"] = (lambda: transforms.ColorJitter(brightness=-1),
                                                V, "brightness")
    c["vai_jax.data.transforms.Normalize"] = (lambda: transforms.Normalize(std=(1.0, 0.0, 1.0)),
                                              V, "std")
    # detection
    c["vai_jax.detection.BoxHead"] = (
        lambda: _init_train(detection.BoxHead(num_classes=0), _z(1, 2, 4, 4, 3)), V,
        "num_classes")
    c["vai_jax.detection.MaskHead"] = (
        lambda: _init_train(detection.MaskHead(num_classes=2), _z(2, 4)), V, "pooled")
    c["vai_jax.detection.RPNHead"] = (
        lambda: _init_train(detection.RPNHead(num_anchors=0, in_features=("stage1",)),
                            {"stage1": _z(1, 4, 4, 3)}), V, "num_anchors")
    c["vai_jax.detection.RegionProposalNetwork"] = (
        lambda: _init(detection.RegionProposalNetwork(in_features=("stage1",),
                                                      nms_threshold=1.5),
                      {"stage1": _z(1, 4, 4, 3)}, image_size=(16, 16), train=False), V,
        "nms_threshold")
    c["vai_jax.detection.RoIStage"] = (
        lambda: _init(detection.RoIStage(num_classes=2, in_features=("stage1",),
                                         pool_mode="avg"),
                      {"stage1": _z(1, 4, 4, 3)}, _z(1, 2, 4), np.ones((1, 2), bool),
                      image_size=(16, 16), train=False), V, "pool_mode")
    tiny = functools.partial(backbones.create_model, "resnet18", num_classes=0,
                             widths=(2, 2, 2, 2), stem_width=2)
    c["vai_jax.detection.FastRCNN"] = (
        lambda: _init_train(detection.FastRCNN(
            backbone=tiny(), roi_stage=detection.RoIStage(num_classes=2,
                                                          in_features=("stage4",))),
            {"image": _z(1, 32, 32, 3)}), KeyError, "proposals")
    c["vai_jax.detection.FasterRCNN"] = (
        lambda: _init_train(detection.FasterRCNN(
            backbone=tiny(), rpn=detection.RegionProposalNetwork(in_features=("stage9",)),
            roi_stage=detection.RoIStage(num_classes=2, in_features=("stage4",))),
            {"image": _z(1, 32, 32, 3)}), (KeyError, V), "stage9")
    c["vai_jax.detection.RCNN"] = (
        lambda: _init_train(detection.RCNN(backbone=tiny(), in_features="stage4", num_classes=2,
                                           stage="sgd"), {"image": _z(1, 32, 32, 3)}), V,
        "stage")
    c["vai_jax.detection.mask_rcnn"] = (
        lambda: detection.mask_rcnn(backbone=tiny(), rpn="rpn", roi_stage=None), E, "rpn")
    # nn
    x4 = _z(1, 4, 4, 2)
    c["vai_jax.nn.ConvBNAct"] = (lambda: _init_train(nn.ConvBNAct(4, groups=3), x4), V, "groups")
    c["vai_jax.nn.same_padding"] = (lambda: nn.same_padding(0), V, "kernel_size")
    c["vai_jax.nn.SqueezeExcite"] = (lambda: _init(nn.SqueezeExcite(0), x4), V,
                                     "hidden_channels")
    c["vai_jax.nn.BasicUnit"] = (lambda: _init_train(nn.BasicUnit(4, shortcut="magic"), x4), V,
                                 "shortcut")
    c["vai_jax.nn.BottleneckUnit"] = (
        lambda: _init_train(nn.BottleneckUnit(4, unit_order="backwards"), x4), V, "unit_order")
    c["vai_jax.nn.padding_shortcut"] = (lambda: nn.padding_shortcut(x4, 1, 1), V,
                                        "out_channels")
    c["vai_jax.nn.DenseBlock"] = (lambda: _init_train(nn.DenseBlock(0, 4), x4), V, "num_layers")
    c["vai_jax.nn.DenseLayer"] = (lambda: _init_train(nn.DenseLayer(0), x4), V, "growth_rate")
    c["vai_jax.nn.Transition"] = (lambda: _init_train(nn.Transition(0), x4), V, "features")
    c["vai_jax.nn.HighwayConv"] = (lambda: _init_train(nn.HighwayConv(kernel_size=2), x4), V,
                                   "kernel_size")
    c["vai_jax.nn.HighwayDense"] = (
        lambda: _init_train(nn.HighwayDense(), np.zeros(3, np.int32)), E, "x")
    c["vai_jax.nn.highway_combine"] = (lambda: nn.highway_combine(_z(2, 3), _z(2, 4), _z(2, 3)),
                                       V, "h")
    c["vai_jax.nn.SpatialPyramidPooling"] = (
        lambda: _init_train(nn.SpatialPyramidPooling(levels=(0,)), x4), V, "levels")
    c["vai_jax.nn.adaptive_bin_edges"] = (lambda: nn.adaptive_bin_edges(0, 2), V, "length")
    c["vai_jax.nn.adaptive_pool_2d"] = (lambda: nn.adaptive_pool_2d(x4, 2, reduce="median"), V,
                                        "reduce")
    c["vai_jax.nn.max_pool_2d"] = (lambda: nn.max_pool_2d(x4, 0, 1), V, "window")
    c["vai_jax.nn.pool_output_size"] = (lambda: nn.pool_output_size(1, 3, 1, 0, False), V,
                                        "window")
    c["vai_jax.nn.spatial_pyramid_pool"] = (lambda: nn.spatial_pyramid_pool(_z(4, 4), (1,)), V,
                                            "x")
    c["vai_jax.nn.ChannelShuffle"] = (lambda: _init_train(nn.ChannelShuffle(3), x4), V,
                                      "groups")
    c["vai_jax.nn.channel_shuffle"] = (lambda: nn.channel_shuffle(x4, 3), V, "groups")
    c["vai_jax.nn.DepthwiseSeparableConv"] = (
        lambda: _init_train(nn.DepthwiseSeparableConv(0), x4), V, "features")
    c["vai_jax.nn.GroupedConv"] = (lambda: _init_train(nn.GroupedConv(4, groups=3), x4), V,
                                   "groups")
    c["vai_jax.nn.SpatiallySeparableConv"] = (
        lambda: _init_train(nn.SpatiallySeparableConv(4, order="diagonal"), x4), V, "order")
    c["vai_jax.nn.Fire"] = (lambda: _init_train(nn.Fire(0, 2, 2), x4), V, "squeeze")
    c["vai_jax.nn.InceptionModule"] = (
        lambda: _init_train(nn.InceptionModule(1, 1, 1, 1, 1, 1), _z(4, 4, 2)), V, "x")
    c["vai_jax.nn.DilatedConvStack"] = (
        lambda: _init_train(nn.DilatedConvStack(4, dilations=()), x4), V, "dilations")
    c["vai_jax.nn.ESPBlock"] = (lambda: _init_train(nn.ESPBlock(4, branches=0), x4), V,
                                "branches")
    c["vai_jax.nn.effective_kernel_size"] = (lambda: nn.effective_kernel_size(3, 0), V,
                                             "dilation")
    c["vai_jax.nn.receptive_field"] = (lambda: nn.receptive_field([3], dilations=[1, 2]), V,
                                       "dilations")
    c["vai_jax.nn.LocalResponseNorm"] = (
        lambda: _init_train(nn.LocalResponseNorm(size=0), x4), V, "size")
    c["vai_jax.nn.local_response_norm"] = (lambda: nn.local_response_norm(x4, size=-1), V,
                                           "size")
    c["vai_jax.nn.TransposedConv"] = (lambda: _init(nn.TransposedConv(4, strides=0), x4), V,
                                      "strides")
    c["vai_jax.nn.bilinear_init"] = (lambda: nn.bilinear_init(KEY, (4, 4, 2)), V, "shape")
    c["vai_jax.nn.bilinear_upsampler"] = (lambda: nn.bilinear_upsampler(4, 0), V, "factor")
    c["vai_jax.nn.FPN"] = (lambda: _init_train(nn.FPN(in_features=("stage9",)),
                                               {"stage1": x4}), (KeyError, V), "stage9")
    c["vai_jax.nn.InvertedResidual"] = (lambda: _init_train(nn.InvertedResidual(4, 0), x4), V,
                                        "expanded")
    c["vai_jax.nn.make_divisible"] = (lambda: nn.make_divisible(8, 0), V, "divisor")
    c["vai_jax.nn.ChainCRF"] = (lambda: _init(nn.ChainCRF(0), _z(1, 3, 2)), V, "num_states")
    c["vai_jax.nn.ConditionalNeuralField"] = (
        lambda: _init_train(nn.ConditionalNeuralField(backbone=m()[0], num_states=2),
                            _z(1, 3, 8, 8)), V, "frames")
    c["vai_jax.nn.DenseCRF"] = (
        lambda: _init_train(nn.DenseCRF(iterations=-1), _z(1, 4, 4, 2), _z(1, 4, 4, 3)), V,
        "iterations")
    c["vai_jax.nn.CRFAsRNN"] = (
        lambda: _init_train(nn.CRFAsRNN(network=m()[0], crf=nn.DenseCRF()), _z(8, 8, 3)), V,
        "x")
    # ops
    c["vai_jax.ops.lab_to_rgb"] = (lambda: ops.lab_to_rgb(_z(4, 2)), V, "lab")
    c["vai_jax.ops.rgb_to_lab"] = (lambda: ops.rgb_to_lab(_z(4, 4)), V, "rgb")
    c["vai_jax.ops.cross_entropy"] = (lambda: ops.cross_entropy(_z(2, 3), np.array([0, 1]),
                                                                label_smoothing="0.1"), E,
                                      "label_smoothing")
    c["vai_jax.ops.gaussian_nll"] = (lambda: ops.gaussian_nll(_z(2), _z(3), _z(2)), V, "mean")
    c["vai_jax.ops.l2_loss"] = (lambda: ops.l2_loss(_z(2), _z(3)), V, "targets")
    c["vai_jax.ops.log_softmax"] = (lambda: ops.log_softmax(_z(2, 2), axis=(0, 0)), V, "axis")
    c["vai_jax.ops.logsumexp"] = (lambda: ops.logsumexp(_z(2, 2), axis=1.0), E, "axis")
    c["vai_jax.ops.nll"] = (lambda: ops.nll(_z(2, 3), np.array([0, 3])), V, "labels")
    c["vai_jax.ops.softmax"] = (lambda: ops.softmax(_z(2, 2), axis=2), V, "axis")
    c["vai_jax.ops.bin_centers"] = (lambda: ops.bin_centers(0, 4.0), V, "num_bins")
    c["vai_jax.ops.decode_bins"] = (lambda: ops.decode_bins(_z(1, 2, 4), extent=-1.0), V,
                                    "extent")
    c["vai_jax.ops.encode_bins"] = (lambda: ops.encode_bins(_z(2), num_bins=0, extent=4.0), V,
                                    "num_bins")
    c["vai_jax.ops.gaussian_heatmaps"] = (
        lambda: ops.gaussian_heatmaps(_z(1, 3), (4, 4), sigma=0.0, stride=1), V, "sigma")
    c["vai_jax.ops.heatmap_argmax"] = (
        lambda: ops.heatmap_argmax(_z(1, 4, 4, 2), refine="cubic"), V, "refine")
    c["vai_jax.ops.heatmap_peaks"] = (lambda: ops.heatmap_peaks(_z(4, 4, 2), max_peaks=0), V,
                                      "max_peaks")
    c["vai_jax.ops.heatmap_weights"] = (
        lambda: ops.heatmap_weights(_z(1, 3), (4, 4), stride=0), V, "stride")
    c["vai_jax.ops.soft_argmax"] = (lambda: ops.soft_argmax(_z(4, 4, 2), beta=np.nan), V,
                                    "beta")
    c["vai_jax.ops.spatial_softmax"] = (lambda: ops.spatial_softmax(_z(4, 4, 2), beta="1"), E,
                                        "beta")
    c["vai_jax.ops.box_area"] = (lambda: ops.box_area(_z(2, 3)), V, "boxes")
    c["vai_jax.ops.box_cxcywh_to_xyxy"] = (lambda: ops.box_cxcywh_to_xyxy(_z(2, 3)), V, "boxes")
    c["vai_jax.ops.box_iou"] = (lambda: ops.box_iou(BOX, NAN_BOX), V, "boxes2")
    c["vai_jax.ops.box_xywh_to_xyxy"] = (lambda: ops.box_xywh_to_xyxy(_z(2, 5)), V, "boxes")
    c["vai_jax.ops.box_xyxy_to_cxcywh"] = (lambda: ops.box_xyxy_to_cxcywh(_z(3)), V, "boxes")
    c["vai_jax.ops.box_xyxy_to_xywh"] = (
        lambda: ops.box_xyxy_to_xywh(np.zeros((1, 4), np.int32)), E, "boxes")
    c["vai_jax.ops.clip_boxes"] = (lambda: ops.clip_boxes(BOX, -1, 4), V, "height")
    c["vai_jax.ops.decode_boxes"] = (lambda: ops.decode_boxes(_z(1, 4), BOX, (1, 1, 0, 1)), V,
                                     "weights")
    c["vai_jax.ops.encode_boxes"] = (lambda: ops.encode_boxes(BOX, NAN_BOX), V, "anchors")
    c["vai_jax.ops.generalized_box_iou"] = (lambda: ops.generalized_box_iou(NAN_BOX, BOX), V,
                                            "boxes1")
    c["vai_jax.ops.paired_box_iou"] = (lambda: ops.paired_box_iou(_z(2, 4), _z(3, 4)), V,
                                       "boxes1 and boxes2 must broadcast")
    c["vai_jax.ops.paired_generalized_box_iou"] = (
        lambda: ops.paired_generalized_box_iou(_z(2, 5), BOX), V, "boxes1")
    c["vai_jax.ops.valid_box_mask"] = (lambda: ops.valid_box_mask(BOX, min_size=-1.0), V,
                                       "min_size")
    c["vai_jax.ops.nms"] = (lambda: ops.nms(BOX, np.ones(1, np.float32), "0.5", max_outputs=1),
                            E, "iou_threshold")
    c["vai_jax.ops.batched_nms"] = (
        lambda: ops.batched_nms(BOX, np.ones(1, np.float32), np.zeros(2, np.int32), 0.5,
                                max_outputs=1), V, "classes")
    c["vai_jax.ops.roi_align"] = (
        lambda: ops.roi_align(_z(1, 4, 4, 2), BOX, np.array([3]), (2, 2)), V, "box_indices")
    c["vai_jax.ops.roi_align_batched"] = (
        lambda: ops.roi_align_batched(_z(1, 4, 4, 2), BOX, (2, 2)), V, "boxes")
    c["vai_jax.ops.roi_pool"] = (
        lambda: ops.roi_pool(_z(1, 4, 4, 2), BOX, np.array([0]), (0, 2)), V, "output_size")
    c["vai_jax.ops.fpn_levels"] = (lambda: ops.fpn_levels(BOX, min_level=4, max_level=2), V,
                                   "max_level")
    c["vai_jax.ops.multilevel_roi_align"] = (
        lambda: ops.multilevel_roi_align([_z(1, 4, 4, 2)], BOX, np.array([0]), (2, 2),
                                         spatial_scales=(1.0, 0.5)), V, "spatial_scales")
    c["vai_jax.ops.align_to"] = (lambda: ops.align_to(x4, (0, 4)), V, "size")
    c["vai_jax.ops.bilinear_kernel"] = (lambda: ops.bilinear_kernel(0), V, "factor")
    c["vai_jax.ops.bilinear_kernel_1d"] = (lambda: ops.bilinear_kernel_1d(-1), V, "factor")
    c["vai_jax.ops.bilinear_kernel_size"] = (lambda: ops.bilinear_kernel_size(0), V, "factor")
    c["vai_jax.ops.bilinear_padding"] = (lambda: ops.bilinear_padding(0), V, "factor")
    c["vai_jax.ops.bilinear_upsample"] = (lambda: ops.bilinear_upsample(x4, 2, edge="wrap"), V,
                                          "edge")
    c["vai_jax.ops.conv_transpose"] = (lambda: ops.conv_transpose(x4, _z(3, 3, 2), strides=2), V,
                                       "kernel")
    c["vai_jax.ops.max_pool_with_argmax"] = (lambda: ops.max_pool_with_argmax(_z(4, 4)), V, "x")
    c["vai_jax.ops.max_unpool"] = (
        lambda: ops.max_unpool(_z(1, 2, 2, 2), np.zeros((1, 2, 2, 2), np.int32), (5, 4)), V,
        "size")
    c["vai_jax.ops.resize_bilinear"] = (lambda: ops.resize_bilinear(x4, (4, 0)), V, "size")
    c["vai_jax.ops.transposed_conv_output_size"] = (
        lambda: ops.transposed_conv_output_size(4, 3, 0), V, "stride")
    c["vai_jax.ops.chain_label_marginals"] = (
        lambda: ops.chain_label_marginals(_z(1, 3, 2), _z(2, 2), np.array([0, 5])), V,
        "state_to_label")
    c["vai_jax.ops.chain_log_likelihood"] = (
        lambda: ops.chain_log_likelihood(_z(1, 3, 2), _z(2, 2), np.array([[0, 1, 2]])), V,
        "labels")
    c["vai_jax.ops.chain_log_partition"] = (
        lambda: ops.chain_log_partition(_z(1, 3, 2), _z(3, 3)), V, "transitions")
    c["vai_jax.ops.chain_marginals"] = (lambda: ops.chain_marginals(_z(1, 3, 2), _z(2, 3)), V,
                                        "transitions")
    c["vai_jax.ops.chain_sequence_log_probs"] = (
        lambda: ops.chain_sequence_log_probs(_z(1, 3, 2), _z(2, 2), np.array([0])), V,
        "state_to_label")
    c["vai_jax.ops.chain_viterbi"] = (
        lambda: ops.chain_viterbi(_z(1, 3, 2), _z(2, 2), mask=np.ones((1, 3))), E, "mask")
    c["vai_jax.ops.dense_crf"] = (
        lambda: ops.dense_crf(_z(1, 4, 4, 2), _z(1, 4, 4, 3), iterations=-1), V, "iterations")
    c["vai_jax.ops.bilateral_filter"] = (
        lambda: ops.bilateral_filter(_z(1, 4, 4, 2), _z(1, 4, 4, 3), 0.0, 1.0), V,
        "position_sigma")
    c["vai_jax.ops.spatial_filter"] = (lambda: ops.spatial_filter(_z(1, 4, 4, 2), -1.0), V,
                                       "sigma")
    # pose
    feats = {"stage4": _z(1, 4, 4, 2)}
    c["vai_jax.pose.DensityHead"] = (
        lambda: _init_train(pose.DensityHead(num_keypoints=0, stride=4), feats), V,
        "num_keypoints")
    c["vai_jax.pose.HeatmapHead"] = (
        lambda: _init_train(pose.HeatmapHead(num_keypoints=2, stride=4, in_features="stage9"),
                            feats), (KeyError, V), "stage9")
    c["vai_jax.pose.IntegralHead"] = (
        lambda: _init_train(pose.IntegralHead(num_keypoints=2, stride=0), feats), V, "stride")
    c["vai_jax.pose.PAFHead"] = (
        lambda: _init_train(pose.PAFHead(num_keypoints=2, stride=4, num_limbs=0), feats), V,
        "num_limbs")
    c["vai_jax.pose.PoseNet"] = (
        lambda: _init_train(pose.PoseNet(backbone=backbones.create_model(
            "resnet18", num_classes=0, widths=(2, 2, 2, 2), stem_width=2),
            head=pose.HeatmapHead(num_keypoints=2, stride=4)), _z(8, 8, 3)), V, "x")
    c["vai_jax.pose.RegressionHead"] = (
        lambda: _init_train(pose.RegressionHead(num_keypoints=2, stride=4, num_convs=-1),
                            feats), V, "num_convs")
    # segmentation
    c["vai_jax.segmentation.ASPP"] = (lambda: _init_train(segmentation.ASPP(rates=(0,)), x4), V,
                                      "rates")
    c["vai_jax.segmentation.ConvHead"] = (
        lambda: _init_train(segmentation.ConvHead(num_classes=0), feats), V, "num_classes")
    c["vai_jax.segmentation.DeepLabHead"] = (
        lambda: _init_train(segmentation.DeepLabHead(num_classes=2, in_features="stage9"),
                            feats), (KeyError, V), "stage9")
    c["vai_jax.segmentation.EncoderDecoder"] = (
        lambda: _init_train(segmentation.EncoderDecoder(num_classes=2, upsample="magic"),
                            _z(1, 8, 8, 3)), V, "upsample")
    c["vai_jax.segmentation.ESPNet"] = (
        lambda: _init_train(segmentation.ESPNet(num_classes=2), _z(8, 8, 3)), V, "x")
    c["vai_jax.segmentation.FCNHead"] = (
        lambda: _init_train(segmentation.FCNHead(num_classes=2, variant=4), feats), V,
        "variant")
    c["vai_jax.segmentation.Segmenter"] = (
        lambda: _init_train(segmentation.Segmenter(
            backbone=backbones.create_model("resnet18", num_classes=0, widths=(2, 2, 2, 2),
                                            stem_width=2),
            head=segmentation.ConvHead(num_classes=2)), _z(8, 8, 3)), V, "x")
    c["vai_jax.segmentation.deeplabv3"] = (
        lambda: segmentation.deeplabv3("resnet18", 2, output_stride=0), V, "output_stride")
    c["vai_jax.segmentation.fcn"] = (lambda: segmentation.fcn("resnet18", 2, variant=4), V,
                                     "variant")
    c["vai_jax.segmentation.upsample_logits"] = (
        lambda: segmentation.upsample_logits(x4, 0, (8, 8)), V, "stride")
    # train
    c["vai_jax.train.augment.make_preprocess"] = (
        lambda: augment.make_preprocess(std=(1.0, 0.0, 1.0)), V, "std")
    c["vai_jax.train.checkpoint.check_compatible"] = (
        lambda: checkpoint.check_compatible({"a": (2,)}, {"a": (3,)}, step=1), V, "'a'")
    c["vai_jax.train.checkpoint.CheckpointManager"] = (
        lambda: checkpoint.CheckpointManager("/tmp/unused", save_every=0), V, "save_every")
    c["vai_jax.train.checkpoint.restore_params"] = (
        lambda: checkpoint.restore_params("/nonexistent_ckpt_dir"), (V, FileNotFoundError),
        "/nonexistent_ckpt_dir")
    c["vai_jax.train.curves.plot_curves"] = (
        lambda: curves.plot_curves("/nonexistent/metrics.jsonl", "/tmp/x.png"),
        FileNotFoundError, "metrics_path")
    c["vai_jax.train.distributed.initialize_from_env"] = (
        lambda: _with_env(distributed.ENV_COORDINATOR, "localhost:1", lambda: _with_env(
            distributed.ENV_NUM_PROCESSES, "two", distributed.initialize_from_env)), V,
        distributed.ENV_NUM_PROCESSES)
    c["vai_jax.train.loop.EarlyStopping"] = (lambda: loop.EarlyStopping("top1", patience=0), V,
                                             "patience")
    c["vai_jax.train.loop.Plateau"] = (lambda: loop.Plateau(None, "top1", mode="up"), V, "mode")
    c["vai_jax.train.loop.skip_summary"] = (lambda: loop.skip_summary({}), (E, AttributeError),
                                            "skipped_steps")
    c["vai_jax.train.loop.evaluate"] = (
        lambda: loop.evaluate(lambda s, b: {}, None, [], batch_size=0), V, "batch_size")
    c["vai_jax.train.loop.fit"] = (
        lambda: loop.fit(None, train_step=lambda s, b: (s, {}), train_iter=iter([]),
                         num_steps=-1, batch_size=1), V, "num_steps")
    c["vai_jax.train.metrics_writer.read_metrics"] = (
        lambda: metrics_writer.read_metrics("/nonexistent/metrics.jsonl"), FileNotFoundError,
        "metrics.jsonl")
    c["vai_jax.train.metrics_writer.MetricsWriter"] = (
        lambda: metrics_writer.MetricsWriter(None), E, "workdir")
    c["vai_jax.train.optim.kernel_mask"] = (lambda: optim.kernel_mask({"w": "a"}),
                                            (E, AttributeError), "params")
    c["vai_jax.train.optim.make_schedule"] = (
        lambda: optim.make_schedule("cosine", base_lr=-1.0, total_steps=10), V, "base_lr")
    c["vai_jax.train.optim.make_optimizer"] = (
        lambda: optim.make_optimizer("sgd", learning_rate=0.1, momentum=1.5), V, "momentum")
    c["vai_jax.train.optim.make_plateau"] = (lambda: optim.make_plateau(factor=2.0), V, "factor")
    c["vai_jax.train.optim.plateau_update"] = (
        lambda: optim.plateau_update(optim.make_plateau(), None, "x"), VT, "value")
    c["vai_jax.train.parallel.make_mesh"] = (lambda: parallel.make_mesh([]), V, "devices")
    c["vai_jax.train.parallel.replicated"] = (lambda: parallel.replicated("mesh"), E, "mesh")
    c["vai_jax.train.parallel.batch_sharding"] = (lambda: parallel.batch_sharding("mesh"), E,
                                                  "mesh")
    c["vai_jax.train.parallel.check_batch_size"] = (
        lambda: parallel.check_batch_size(3, parallel.make_mesh()), V, "global batch size")
    c["vai_jax.train.parallel.replicate"] = (lambda: parallel.replicate({}, "mesh"), E, "mesh")
    c["vai_jax.train.parallel.shard_batch"] = (
        lambda: parallel.shard_batch({"x": _z(3, 2)}, parallel.make_mesh()), V, "batch")
    c["vai_jax.train.parallel.data_parallel"] = (
        lambda: parallel.data_parallel("step", parallel.make_mesh()), E, "step_fn")
    c["vai_jax.train.precision.compute_dtype"] = (lambda: precision.compute_dtype("fp8"), V,
                                                  "precision")
    c["vai_jax.train.precision.needs_loss_scale"] = (
        lambda: precision.needs_loss_scale("fp8"), V, "precision")
    c["vai_jax.train.precision.DynamicLossScale"] = (
        lambda: precision.DynamicLossScale.create(0.0), V, "initial_scale")
    c["vai_jax.train.precision.all_finite"] = (lambda: precision.all_finite({"a": "text"}), VT,
                                               "tree")
    c["vai_jax.train.regularization.param_path"] = (lambda: regularization.param_path(3), E,
                                                    "path")
    c["vai_jax.train.regularization.make_weight_penalty"] = (
        lambda: regularization.make_weight_penalty(l2=-1.0), V, "l2")
    c["vai_jax.train.state.TrainState"] = (
        lambda: state.TrainState.create(apply_fn=None, variables={"params": {}},
                                        tx=optim.make_optimizer("sgd", learning_rate=0.1),
                                        rng=np.zeros(3, np.uint32)), E, "rng")
    c["vai_jax.train.state.init_variables"] = (
        lambda: state.init_variables(m()[0], (1, 0, 8, 3), rng=KEY), V, "input_shape")
    c["vai_jax.train.step.default_preprocess"] = (
        lambda: step.default_preprocess({"img": _z(1)}, KEY, train=False), KeyError, "image")
    c["vai_jax.train.step.make_train_step"] = (
        lambda: step.make_train_step(classification.softmax_cross_entropy, num_classes=0), V,
        "num_classes")
    c["vai_jax.train.step.make_eval_step"] = (
        lambda: step.make_eval_step(lambda o, b, m: {}, label_key=3, num_classes=2), E,
        "label_key")
    # viz
    c["vai_jax.viz.draw.draw_image"] = (lambda: draw.draw_image(None, _z(4, 4, 2)), V, "image")
    c["vai_jax.viz.draw.draw_boxes"] = (lambda: draw.draw_boxes(None, _z(2, 3)), V, "boxes")
    c["vai_jax.viz.draw.draw_masks"] = (lambda: draw.draw_masks(None, _z(1, 1, 4, 4)), V,
                                        "masks")
    c["vai_jax.viz.draw.draw_semantic"] = (lambda: draw.draw_semantic(None, _z(2, 4, 4)), V,
                                           "semantic")
    c["vai_jax.viz.draw.draw_keypoints"] = (lambda: draw.draw_keypoints(None, _z(2, 2)), V,
                                            "keypoints")
    c["vai_jax.viz.draw.draw_record"] = (lambda: draw.draw_record(None, {}), V, "image")
    c["vai_jax.viz.draw.save_grid"] = (lambda: draw.save_grid([], "/tmp/unused.png"), V,
                                       "records")
    c["vai_jax.viz.grids.save_image_grid"] = (
        lambda: grids.save_image_grid(_z(2, 4), "/tmp/unused.png"), V, "images")
    c["vai_jax.viz.grids.save_rows_grid"] = (lambda: grids.save_rows_grid({}, "/tmp/u.png"), V,
                                             "rows")
    c["vai_jax.viz.grids.save_heatmap_grid"] = (
        lambda: grids.save_heatmap_grid(_z(2, 4, 4, 3), _z(3, 4, 4), "/tmp/u.png"), V,
        "heatmaps")
    c["vai_jax.viz.lines.save_line_plot"] = (
        lambda: lines.save_line_plot({"a": ([1, 2], [1])}, "/tmp/u.png", xlabel="x",
                                     ylabel="y"), V, "series")
    c["vai_jax.viz.figures.save_figure"] = (lambda: figures.save_figure("fig", "/tmp/u.png"), E,
                                            "fig")
    c["vai_jax.viz.tables.markdown_table"] = (
        lambda: tables.markdown_table(["a", "b"], [[1]]), V, "rows")
    # weights
    c["vai_jax.weights.from_torchvision"] = (
        lambda: weights.from_torchvision("resnet19", {}), V, "resnet19")
    c["vai_jax.weights.load"] = (lambda: weights.load("/nonexistent.msgpack"),
                                 FileNotFoundError, "/nonexistent.msgpack")
    c["vai_jax.weights.model_for"] = (lambda: weights.model_for("resnet19"), V, "resnet19")
    c["vai_jax.weights.read_state_dict"] = (lambda: weights.read_state_dict("/nonexistent.npz"),
                                            FileNotFoundError, "/nonexistent.npz")
    c["vai_jax.weights.save"] = (lambda: weights.save("/tmp/unused.msgpack", "variables"), VT,
                                 "variables")
    c["vai_jax.weights.task_of"] = (lambda: weights.task_of("resnet19"), V, "resnet19")
    c["vai_jax.weights.torchvision_keys"] = (lambda: weights.torchvision_keys("resnet19"), V,
                                             "resnet19")
    return c


# Names without a case, each with the reason (constants are exempt as a rule).
EXEMPT = {
    "vai_jax.list_models": "takes no arguments",
    "vai_jax.backbones.list_models": "takes no arguments",
    "vai_jax.data.shapes_geometry.star_polygon": "takes no arguments",
    "vai_jax.analysis.LayerRow": "a result record built by summarize, not from user input",
    "vai_jax.analysis.Summary": "a result record built by summarize, not from user input",
    "vai_jax.analysis.TopPatches": "a result record built by top_patches",
    "vai_jax.analysis.ProbeResult": "a result record built by train_linear_probe",
    "vai_jax.analysis.ReceptiveField": "a result record built by receptive_field",
    "vai_jax.backbones.FeatureInfo": "a NamedTuple the backbones build from their fields",
    "vai_jax.data.shapes_render.Scene": "a NamedTuple of arrays built by empty_scene",
    "vai_jax.train.loop.FitResult": "a result record built by fit",
    "vai_jax.train.checkpoint.CorruptCheckpointError": "an exception type",
    "vai_jax.weights.CheckpointError": "an exception type",
    "vai_jax.weights.Target": "a NamedTuple of conversion rules inside the converter tables",
    "vai_jax.data.segmentation_sources.VocSegmentation": "a tfds builder; its arguments are "
                                                         "tfds's, checked by tfds",
}


def test_every_public_name_has_a_bad_input_case():
    cases = _cases()
    missing = sorted(name for name, obj in public_names().items()
                     if callable(obj) and name not in cases and name not in EXEMPT)
    assert not missing, f"public names without a bad-input case or a stated exemption: {missing}"
    assert all(reason.strip() for reason in EXEMPT.values())


_CASES = _cases()


@pytest.mark.parametrize("name", sorted(_CASES))
def test_bad_input_raises_naming_the_argument(name):
    fn, error, text = _CASES[name]
    with pytest.raises(error) as info:
        fn()
    assert text in str(info.value), (name, str(info.value))
