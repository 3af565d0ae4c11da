"""torchvision's (and timm's torchvision-derived) classifier checkpoints: per family, the name
of each vai_jax module in the PyTorch state dict; and per torchvision builder name, the vai_jax
model that computes the same function.

A family is a :class:`Family`: ``torch_name(model, module_path, all_module_paths)`` returns the
PyTorch prefix (or a :class:`~vai_jax.weights.convert.Target` when the layout needs care), and a
few regular expressions name the checkpoint keys that may be present without being loaded.
Detection and segmentation models are further families of the same kind.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable

from vai_jax.weights.convert import Target

# ConvBNAct's children -> index in torchvision's Conv2dNormActivation / Sequential(conv, bn).
_SEQ = {"conv": 0, "bn": 1}


@dataclasses.dataclass(frozen=True)
class Family:
    """How one architecture family is laid out in PyTorch.

    Attributes:
      torch_name: ``(model, module path, all module paths) -> Target | prefix | None``.
      classifier: the checkpoint key of the classifier weight (its first axis is the number of
        classes; read to size the model when ``num_classes`` is not given).
      head: regular expression of the classifier's keys (accepted, not loaded, when the model
        is built with ``num_classes=0``).
      extra: regular expressions of keys accepted and not loaded when the model has no such
        module (auxiliary classifiers).
      rename: ``key -> key`` applied to every checkpoint key first (older key layouts).
    """

    torch_name: Callable
    classifier: str
    head: str
    extra: tuple[str, ...] = ()
    rename: Callable[[str], str] | None = None


def _rules(rules):
    """A ``torch_name`` from ``(regex, template or function of the match)`` pairs, tried in
    order on the module path."""
    compiled = [(re.compile(p), t) for p, t in rules]

    def torch_name(model, path, modules):
        del model, modules
        for pattern, template in compiled:
            m = pattern.fullmatch(path)
            if m:
                return template(m) if callable(template) else m.expand(template)
        return None

    return torch_name


def _minus1(s: str) -> int:
    return int(s) - 1


# ---- ResNet, ResNeXt, Wide ResNet (torchvision's and timm's keys agree) ----------------------
RESNET = Family(
    torch_name=_rules([
        (r"stem/conv", "conv1"), (r"stem/bn", "bn1"),
        (r"stage(\d+)/block(\d+)/(conv|bn)(\d)",
         lambda m: f"layer{m[1]}.{_minus1(m[2])}.{m[3]}{m[4]}"),
        (r"stage(\d+)/block(\d+)/shortcut/(conv|bn)",
         lambda m: f"layer{m[1]}.{_minus1(m[2])}.downsample.{_SEQ[m[3]]}"),
        (r"fc", "fc"),
    ]),
    classifier="fc.weight", head=r"fc\..*")


# ---- DenseNet -----------------------------------------------------------------------------
def _densenet_rename(key: str) -> str:
    # torchvision's download files use "denselayer1.norm.1.weight" for "denselayer1.norm1.weight"
    # (its loader rewrites them the same way).
    return re.sub(r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.", r"\1\2.", key)


DENSENET = Family(
    torch_name=_rules([
        (r"stem/conv", "features.conv0"), (r"stem/bn", "features.norm0"),
        (r"stage(\d+)/layer(\d+)/conv(\d)", r"features.denseblock\1.denselayer\2.conv\3"),
        (r"stage(\d+)/layer(\d+)/bn(\d)", r"features.denseblock\1.denselayer\2.norm\3"),
        (r"transition(\d+)/conv", r"features.transition\1.conv"),
        (r"transition(\d+)/bn", r"features.transition\1.norm"),
        (r"final_bn", "features.norm5"), (r"fc", "classifier"),
    ]),
    classifier="classifier.weight", head=r"classifier\..*", rename=_densenet_rename)


# ---- AlexNet and VGG (torchvision's nn.Sequential indices) -------------------------------------
def _alexnet(model, path, modules):
    del modules
    convs = {"stage1/conv1": 0, "stage2/conv1": 3, "stage3/conv1": 6, "stage3/conv2": 8,
             "stage3/conv3": 10}
    if path.endswith("/conv") and path[:-5] in convs:
        return f"features.{convs[path[:-5]]}"
    if path == "fc1":
        p = model.pool_size
        return Target("classifier.1", "flatten_chw", (model.widths[4], p, p))
    return {"fc2": "classifier.4", "fc3": "classifier.6"}.get(path)


ALEXNET = Family(torch_name=_alexnet, classifier="classifier.6.weight", head=r"classifier\..*")


def _vgg_features(model) -> dict[str, str]:
    """vai_jax conv / bn path -> ``features.<index>`` in torchvision's VGG ``features``."""
    out, idx = {}, 0
    for i, kernels in enumerate(model.config):
        for j in range(len(kernels)):
            base = f"stage{i + 1}/conv{j + 1}"
            out[f"{base}/conv"] = f"features.{idx}"
            if model.batch_norm:
                out[f"{base}/bn"] = f"features.{idx + 1}"
            idx += 3 if model.batch_norm else 2
        idx += 1  # max pool
    return out


def _vgg(timm: bool):
    def torch_name(model, path, modules):
        del modules
        features = _vgg_features(model)
        if path in features:
            return features[path]
        p = model.pool_size
        chw = (model.widths[-1], p, p)
        if timm:  # timm: the first two linear layers are convolutions (ConvMlp), then head.fc
            return {"fc1": Target("pre_logits.fc1", "conv_as_dense", chw),
                    "fc2": Target("pre_logits.fc2", "conv_as_dense"), "fc3": "head.fc"}.get(path)
        return {"fc1": Target("classifier.0", "flatten_chw", chw), "fc2": "classifier.3",
                "fc3": "classifier.6"}.get(path)

    return torch_name


VGG = Family(torch_name=_vgg(timm=False), classifier="classifier.6.weight", head=r"classifier\..*")
VGG_TIMM = Family(torch_name=_vgg(timm=True), classifier="head.fc.weight",
                  head=r"(pre_logits|head)\..*")


# ---- SqueezeNet -----------------------------------------------------------------------------
def _squeezenet(model, path, modules):
    del modules
    if path == "conv1/conv":
        return "features.0"
    if path == "classifier/conv":
        return "classifier.1"
    m = re.fullmatch(r"fire(\d)/(squeeze|expand1x1|expand3x3)/conv", path)
    if not m:
        return None
    idx = 3  # conv, ReLU, max pool
    for n in range(2, int(m[1])):
        idx += 2 if f"fire{n}" in model.pool_after else 1
    return f"features.{idx}.{m[2]}"


SQUEEZENET = Family(torch_name=_squeezenet, classifier="classifier.1.weight",
                    head=r"classifier\..*")


# ---- GoogLeNet and Inception v3 ---------------------------------------------------------------
_GOOGLENET_STEM = {"conv1": "conv1", "conv2_reduce": "conv2", "conv2": "conv3"}
_GOOGLENET_BRANCHES = {"branch1x1": "branch1", "branch3x3_reduce": "branch2.0",
                       "branch3x3": "branch2.1", "branch5x5_reduce": "branch3.0",
                       "branch5x5": "branch3.1", "pool_proj": "branch4.1"}


def _googlenet(model, path, modules):
    del modules
    m = re.fullmatch(r"(conv1|conv2_reduce|conv2)/(conv|bn)", path)
    if m:
        return f"{_GOOGLENET_STEM[m[1]]}.{m[2]}"
    m = re.fullmatch(r"inception_(\w\w)/(\w+)/(conv|bn)", path)
    if m and m[2] in _GOOGLENET_BRANCHES:
        return f"inception{m[1]}.{_GOOGLENET_BRANCHES[m[2]]}.{m[3]}"
    m = re.fullmatch(r"(aux[12])/(conv/conv|conv/bn|fc1|fc2)", path)
    if m:
        if m[2] == "fc1":  # torchvision flattens the 128×4×4 map channels first
            return Target(f"{m[1]}.fc1", "flatten_chw", (128, 4, 4))
        return f"{m[1]}.{m[2].replace('/', '.')}"
    return "fc" if path == "fc" else None


GOOGLENET = Family(torch_name=_googlenet, classifier="fc.weight", head=r"fc\..*",
                   extra=(r"aux[12]\..*",))


def _inception_v3(model, path, modules):
    del model, modules
    first, _, rest = path.partition("/")
    if first == "fc":
        return "fc"
    if first == "aux_logits":
        top = "AuxLogits"
    elif first.startswith(("conv2d_", "mixed_")):
        top = first[0].upper() + first[1:]  # conv2d_1a_3x3 -> Conv2d_1a_3x3, mixed_5b -> Mixed_5b
    else:
        return None
    return f"{top}.{rest.replace('/', '.')}" if rest else top


INCEPTION_V3 = Family(torch_name=_inception_v3, classifier="fc.weight", head=r"fc\..*",
                      extra=(r"AuxLogits\..*",))


# ---- MobileNetV2, MobileNetV3, ShuffleNet V2 -----------------------------------------------------
def _mobilenet(version: int):
    def torch_name(model, path, modules):
        m = re.fullmatch(r"(stem|last_conv)/(conv|bn)", path)
        if m:
            tops = {p.split("/")[0] for p in modules}
            n = len({t for t in tops if re.fullmatch(r"block\d+", t)})
            return f"features.{0 if m[1] == 'stem' else n + 1}.{_SEQ[m[2]]}"
        m = re.fullmatch(r"block(\d+)/(expand|depthwise|se|project)/(conv|bn|fc1|fc2)", path)
        if m:
            block = m[1]
            order = [s for s in ("expand", "depthwise", "se", "project")
                     if any(p.startswith(f"block{block}/{s}/") for p in modules)]
            j = order.index(m[2])
            inner = "conv" if version == 2 else "block"
            if m[2] == "se":
                return Target(f"features.{block}.{inner}.{j}.{m[3]}", "conv_as_dense")
            if version == 2 and m[2] == "project":  # a bare conv then a BatchNorm
                return f"features.{block}.conv.{j + _SEQ[m[3]]}"
            return f"features.{block}.{inner}.{j}.{_SEQ[m[3]]}"
        if version == 2:
            return "classifier.1" if path == "fc" else None
        return {"fc1": "classifier.0", "fc2": "classifier.3"}.get(path)

    return torch_name


MOBILENET_V2 = Family(torch_name=_mobilenet(2), classifier="classifier.1.weight",
                      head=r"classifier\..*")
MOBILENET_V3 = Family(torch_name=_mobilenet(3), classifier="classifier.3.weight",
                      head=r"classifier\..*")

_SHUFFLE_V2_UNIT = {"branch1_depthwise": ("branch1", 0), "branch1_conv": ("branch1", 2),
                    "branch2_conv1": ("branch2", 0), "branch2_depthwise": ("branch2", 3),
                    "branch2_conv2": ("branch2", 5)}
SHUFFLENET_V2 = Family(
    torch_name=_rules([
        (r"(conv1|conv5)/(conv|bn)", lambda m: f"{m[1]}.{_SEQ[m[2]]}"),
        (r"stage(\d)/unit(\d+)/(branch1_depthwise|branch1_conv|branch2_\w+)/(conv|bn)",
         lambda m: (f"stage{int(m[1]) + 1}.{_minus1(m[2])}.{_SHUFFLE_V2_UNIT[m[3]][0]}."
                    f"{_SHUFFLE_V2_UNIT[m[3]][1] + _SEQ[m[4]]}")),
        (r"fc", "fc"),
    ]),
    classifier="fc.weight", head=r"fc\..*")


# ---- builder names --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Spec:
    """A torchvision (or timm) builder name's vai_jax twin: the registry name, the fields that
    make it compute the builder's function with pretrained weights, the family, and the input
    size used to trace the model's variables."""

    model: str
    family: Family
    overrides: tuple[tuple[str, object], ...] = ()
    trace_size: int = 224


_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
            "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2")
_VGGS = tuple(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn"))
_DENSENETS = ("densenet121", "densenet161", "densenet169", "densenet201")
# torchvision's GoogLeNet with pretrained weights: BatchNorm (eps 1e-3) instead of LRN and
# biases, 3×3 "5×5" branches, a 2×2/2 pool before 5a, adaptive pooling in the auxiliary heads,
# dropout 0.2, and the input transform.
_GOOGLENET_TV = (("norm", True), ("lrn", False), ("kernel5x5", 3), ("pool4_window", 2),
                 ("aux_pool", "adaptive"), ("bn_epsilon", 1e-3), ("dropout_rate", 0.2),
                 ("transform_input", True))
_INCEPTION_TV = (("bn_epsilon", 1e-3), ("transform_input", True))

TORCHVISION = {
    **{n: Spec(n, RESNET) for n in _RESNETS},
    **{n: Spec(n, VGG) for n in _VGGS},
    **{n: Spec(n, DENSENET) for n in _DENSENETS},
    "alexnet": Spec("alexnet", ALEXNET),
    "squeezenet1_0": Spec("squeezenet1_0", SQUEEZENET),
    "squeezenet1_1": Spec("squeezenet1_1", SQUEEZENET),
    "googlenet": Spec("googlenet", GOOGLENET, _GOOGLENET_TV),
    "inception_v3": Spec("inception_v3", INCEPTION_V3, _INCEPTION_TV, trace_size=299),
    "mobilenet_v2": Spec("mobilenet_v2", MOBILENET_V2),
    "mobilenet_v3_large": Spec("mobilenet_v3_large", MOBILENET_V3),
    "mobilenet_v3_small": Spec("mobilenet_v3_small", MOBILENET_V3),
    **{f"shufflenet_v2_{k}": Spec(f"shufflenet_v2_{k}", SHUFFLENET_V2)
       for k in ("x0_5", "x1_0", "x1_5", "x2_0")},
}

# timm architectures whose checkpoints (e.g. "resnet50.tv_in1k", torchvision's weights as
# safetensors) this module reads; only VGG's key layout differs from torchvision's. The model is
# torchvision's in every case: for VGG that equals timm's at 224×224 (timm runs its first linear
# layer as a 7×7 convolution over the map, torchvision pools the map to 7×7 first).
TIMM = {
    **{n: Spec(n, RESNET) for n in _RESNETS},
    **{n: Spec(n, VGG_TIMM) for n in _VGGS},
    **{n: Spec(n, DENSENET) for n in _DENSENETS},
    "inception_v3": Spec("inception_v3", INCEPTION_V3, _INCEPTION_TV, trace_size=299),
}


def resolve(name: str) -> tuple[Spec, str]:
    """``(Spec, canonical name)`` of a torchvision builder name (``"resnet50"``) or a timm name
    with a pretrained tag (``"resnet50.tv_in1k"``, optionally ``"timm/"``-prefixed).

    Raises:
      ValueError: an unknown name, listing the supported ones.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str; got {type(name).__name__}")
    base = name[len("timm/"):] if name.startswith("timm/") else name
    if "." in base:
        arch, tag = base.split(".", 1)
        if arch in TIMM and tag:
            return TIMM[arch], f"{arch}.{tag}"
        raise ValueError(f"unknown timm model {name!r}; supported architectures (with any "
                         f"pretrained tag, e.g. 'resnet50.tv_in1k'): {', '.join(sorted(TIMM))}")
    if base in TORCHVISION and base == name:
        return TORCHVISION[base], base
    raise ValueError(f"unknown torchvision model {name!r}; supported: "
                     f"{', '.join(sorted(TORCHVISION))} (and timm names such as "
                     f"'resnet50.tv_in1k')")
