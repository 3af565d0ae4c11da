"""Per-patch class evidence (Brendel & Bethge 2019, BagNet; the class activation maps of Zhou et
al. 2016 for any "global average pool + linear" classifier).

A network whose logits are ``W · mean_{i,j} f[i, j] + b`` is a bag of local features: the same
logits are the mean over positions of the per-position evidence ``e[i, j] = W · f[i, j] + b``,
and ``e[i, j, k]`` says how much the patch seen by unit ``(i, j)`` (its receptive field: 9, 17
or 33 pixels for BagNets, much larger for ResNets) votes for class ``k``. If the model already
returns ``features["evidence"]`` (the BagNet backbone), that is used as is.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from vai_jax._validation import check_array
from vai_jax.analysis.layers import check_layers, layer_outputs, layer_shapes

EVIDENCE = "evidence"


def evidence_maps(model, variables, x, *, feature: str | None = None, classifier: str = "fc",
                  **call_kwargs):
    """Class evidence at every position of the last feature map.

    Args:
      model, variables: the classifier (pass ``train=False``).
      x: float ``[B, H, W, C]`` model input.
      feature: the layer whose map the classifier pools (default: the model's own
        ``features["evidence"]`` when present, else the last entry of ``model.feature_info``).
      classifier: path of the ``nn.Dense`` applied to the pooled map (``"fc"``).

    Returns:
      ``(evidence float32 [B, h, w, K], logits [B, K])``. For "mean pool + linear" models,
      ``evidence.mean((1, 2)) == logits``.

    Raises:
      ValueError: unknown layer names (listing the valid ones), or a classifier whose input
        width differs from the feature map's channels.
    """
    x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
    valid = layer_shapes(model, variables, x.shape, **call_kwargs)
    if feature is None:
        if EVIDENCE in valid:
            feature = EVIDENCE
        else:
            feature = model.feature_info[-1].name
    check_layers([feature], list(valid), "feature")
    outs = layer_outputs(model, variables, x, [feature, "logits"], **call_kwargs)
    if feature == EVIDENCE:
        return jnp.asarray(outs[feature], jnp.float32), outs["logits"]
    params = traverse_util.flatten_dict(dict(variables["params"]))
    kernel = params.get(tuple(classifier.split("/")) + ("kernel",))
    if kernel is None:
        dense = sorted({"/".join(k[:-1]) for k in params if k[-1] == "kernel"
                        and np.ndim(params[k]) == 2})
        raise ValueError(f"classifier: no dense layer named {classifier!r}; dense layers are: "
                         f"{', '.join(dense)}")
    bias = params.get(tuple(classifier.split("/")) + ("bias",))
    f = outs[feature]
    if f.ndim != 4 or f.shape[-1] != kernel.shape[0]:
        raise ValueError(f"feature {feature!r} has shape {f.shape} but classifier {classifier!r} "
                         f"reads {kernel.shape[0]} channels")
    e = jnp.einsum("bhwc,ck->bhwk", f.astype(jnp.float32), jnp.asarray(kernel, jnp.float32))
    if bias is not None:
        e = e + jnp.asarray(bias, jnp.float32)
    return e, outs["logits"]


def class_maps(evidence, classes) -> np.ndarray:
    """``evidence [B, h, w, K]`` at one class per example (``classes`` int ``[B]``) →
    float32 ``[B, h, w]``, centred on the example's mean over positions so that positive cells
    vote for the class more than average."""
    e = np.asarray(evidence, np.float32)
    classes = np.asarray(classes).reshape(-1)
    if e.ndim != 4 or classes.shape[0] != e.shape[0]:
        raise ValueError(f"evidence must be [B, h, w, K] and classes [B]; got {e.shape} and "
                         f"{classes.shape}")
    m = np.stack([e[b, :, :, classes[b]] for b in range(len(e))])
    return m - m.mean(axis=(1, 2), keepdims=True)
