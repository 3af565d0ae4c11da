"""What the torchvision R-CNN parity tests and ``make_references.py`` share: the builder
arguments, the inputs, the seeded random weights, the torchvision run and the reference files.
Not a test module.

Weights are never committed: ``references/<name>.npz`` holds torchvision's state-dict keys and
shapes and the outputs; the weights are regenerated from the manifest with
:func:`tests.weights.parity.random_state_dict` (PCG64's raw stream). Random weights give
arbitrary but deterministic detections. A flat softmax over 91 classes gives 0.011, below
``box_score_thresh`` (0.05); the seeded network's RoI features are large enough (about 10 times
unit scale) that its classifier already spreads the scores: the 20 kept detections of each image
score 0.16 to 0.56 without scaling any weight (multiplying ``cls_score.weight`` by 4 would
saturate them at 1.0, where ties hide the order of NMS).

Inputs: a batch of two 128 x 100 images, uniform noise and a crop of the astronaut photograph
(NASA, public domain; ``astronaut.jpg``, scikit-image's ``astronaut``) down-sampled 4x; the
transform resizes them to 327 x 256 (padded 352 x 256) with ``min_size=256, max_size=384``.
"""
from __future__ import annotations

import json
import os
import zlib

import numpy as np

from tests.weights.parity import _between, random_state_dict

HERE = os.path.dirname(__file__)
REFERENCES = os.path.join(HERE, "references")
NAMES = ("fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn")
KWARGS = dict(min_size=256, max_size=384, rpn_pre_nms_top_n_test=500,
              rpn_post_nms_top_n_test=300, box_detections_per_img=20)
MASKS_STORED = 6  # pasted masks of the first detections of each image kept in the references


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


def photo() -> np.ndarray:
    """``[128, 100, 3]`` float32 in [0, 1]: the astronaut photograph cropped to 512 x 400 and
    averaged over 4 x 4 blocks."""
    from PIL import Image

    im = np.asarray(Image.open(os.path.join(HERE, "astronaut.jpg")).convert("RGB"), np.float32)
    crop = im[:, 56:456] / np.float32(255.0)
    return crop.reshape(128, 4, 100, 4, 3).mean(axis=(1, 3)).astype(np.float32)


def images() -> np.ndarray:
    """``[2, 128, 100, 3]`` float32: noise, then the photograph."""
    noise = _between(12345, (128, 100, 3), 0.0, 1.0)
    return np.stack([noise, photo()])


def state_dict(name: str, manifest) -> dict:
    return random_state_dict(manifest, seed_of(name))


def torch_model(name: str):
    """torchvision's builder ``name`` with FrozenBatchNorm2d (as with pretrained weights) and
    :data:`KWARGS`, in evaluation mode, without weights loaded."""
    from torchvision.models import resnet50
    from torchvision.models.detection import FasterRCNN, KeypointRCNN, MaskRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import misc

    backbone = _resnet_fpn_extractor(resnet50(weights=None, norm_layer=misc.FrozenBatchNorm2d), 3)
    cls = {"fasterrcnn_resnet50_fpn": (FasterRCNN, 91), "maskrcnn_resnet50_fpn": (MaskRCNN, 91),
           "keypointrcnn_resnet50_fpn": (KeypointRCNN, 2)}[name]
    return cls[0](backbone, num_classes=cls[1], **KWARGS).eval()


def torch_outputs(name: str) -> dict:
    """Run torchvision on :func:`images` with the seeded weights: ``{"manifest", "proposals_<i>",
    "boxes_<i>", "scores_<i>", "labels_<i>", ["masks_<i>"], ["keypoints_<i>"]}`` per image."""
    import torch

    torch.manual_seed(0)
    model = torch_model(name)
    manifest = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict(name, manifest).items()})
    x = [torch.from_numpy(im.transpose(2, 0, 1).copy()) for im in images()]
    captured = {}
    model.rpn.register_forward_hook(lambda m, i, o: captured.update(proposals=o[0]))
    with torch.no_grad():
        result = model(x)
    out = {"manifest": manifest}
    for i, r in enumerate(result):
        out[f"proposals_{i}"] = captured["proposals"][i].numpy()
        for k in ("boxes", "scores", "labels"):
            out[f"{k}_{i}"] = r[k].numpy()
        if "masks" in r:
            out[f"masks_{i}"] = r["masks"][:MASKS_STORED, 0].numpy()
        if "keypoints" in r:
            out[f"keypoints_{i}"] = torch.cat([r["keypoints"][..., :2],
                                               r["keypoints_scores"][..., None]], -1).numpy()
    return out


def write_reference(name: str, out: dict, versions: str) -> str:
    os.makedirs(REFERENCES, exist_ok=True)
    path = os.path.join(REFERENCES, f"{name}.npz")
    arrays = {k: (v.astype(np.float16) if k.startswith("masks") else v)
              for k, v in out.items() if k != "manifest"}
    np.savez_compressed(path, manifest=np.array(json.dumps([[k, list(s)] for k, s in
                                                            out["manifest"]])),
                        versions=np.array(versions), **arrays)
    return path


def read_reference(name: str) -> dict:
    with np.load(os.path.join(REFERENCES, f"{name}.npz"), allow_pickle=False) as z:
        out = {k: z[k] for k in z.files if k not in ("manifest", "versions")}
        out["manifest"] = [(k, tuple(s)) for k, s in json.loads(str(z["manifest"]))]
    return {k: (v.astype(np.float32) if k.startswith("masks") else v) for k, v in out.items()}
