"""Activation maximisation: gradient ascent in input space (Erhan et al. 2009; Simonyan et al.
2014; Yosinski et al. 2015's regularisers).

Start from a blank (or noise) image and repeatedly move it along the gradient of one unit's
activation, with the usual regularisers: L2 decay of the image, a Gaussian blur every few steps
and a random jitter (translation) before each step. The whole loop is one ``jax.jit``-compiled
``lax.fori_loop``, and all requested channels are optimised together as one batch (the network
runs in inference mode, so examples do not interact).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vai_jax.analysis.layers import collect_outputs, check_layers, layer_shapes

OBJECTIVES = ("mean", "centre")


@dataclasses.dataclass(frozen=True)
class AscentConfig:
    """Hyper-parameters of the ascent.

    Attributes:
      steps: gradient steps.
      learning_rate: step size; the gradient is divided by its mean absolute value per image,
        so this is roughly the mean change of a pixel value per step.
      l2_decay: the image is multiplied by ``1 − l2_decay`` after each step.
      blur_every: apply a Gaussian blur every this many steps (0 = never).
      blur_sigma: its standard deviation in pixels.
      jitter: random translation of up to ± this many pixels before each step (0 = none).
      value_range: the image is clipped to ``[lo, hi]`` (model-input units) after each step.
      init: ``"blank"`` (zeros) or ``"noise"`` (N(0, 0.1²)).
    """

    steps: int = 128
    learning_rate: float = 0.05
    l2_decay: float = 1e-3
    blur_every: int = 4
    blur_sigma: float = 0.5
    jitter: int = 1
    value_range: tuple[float, float] = (-3.0, 3.0)
    init: str = "blank"

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1; got {self.steps}")
        if not 0 <= self.l2_decay < 1:
            raise ValueError(f"l2_decay must be in [0, 1); got {self.l2_decay}")
        if self.blur_every < 0 or self.jitter < 0 or self.blur_sigma < 0:
            raise ValueError("blur_every, jitter and blur_sigma must be >= 0; got "
                             f"{self.blur_every}, {self.jitter}, {self.blur_sigma}")
        if self.init not in ("blank", "noise"):
            raise ValueError(f"init must be 'blank' or 'noise'; got {self.init!r}")
        if not self.value_range[0] < self.value_range[1]:
            raise ValueError(f"value_range must be (lo, hi) with lo < hi; got {self.value_range}")


def gaussian_blur(x, sigma: float):
    """Separable Gaussian blur of ``x [B, H, W, C]`` per channel (edge padding, radius
    ``ceil(2σ)``); ``sigma = 0`` returns ``x``."""
    if sigma <= 0:
        return x
    r = int(np.ceil(2 * sigma))
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k = jnp.asarray(k / k.sum(), x.dtype)
    xp = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="edge")
    h, w = x.shape[1], x.shape[2]
    rows = sum(k[d] * xp[:, d:d + h, :, :] for d in range(2 * r + 1))
    return sum(k[d] * rows[:, :, d:d + w, :] for d in range(2 * r + 1))


def unit_objective(out, channels, objective: str):
    """Per-example activation to maximise.

    Args:
      out: the layer's output ``[N, h, w, C]`` or ``[N, C]`` (e.g. logits).
      channels: int ``[N]``, the channel (class) of each example.
      objective: ``"mean"`` (mean over positions of the channel) or ``"centre"`` (the unit at
        ``(h // 2, w // 2)``); the same for rank-2 outputs.

    Returns:
      float ``[N]``.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}; got {objective!r}")
    idx = jnp.arange(out.shape[0])
    if out.ndim == 2:
        return out[idx, channels]
    if out.ndim != 4:
        raise ValueError(f"the layer output must be [N, h, w, C] or [N, C]; got {out.shape}")
    if objective == "centre":
        return out[idx, out.shape[1] // 2, out.shape[2] // 2, channels]
    return jnp.mean(out, axis=(1, 2))[idx, channels]


def make_ascent(fn, input_shape: Sequence[int], config: AscentConfig, *, objective: str = "mean"):
    """Build the jit-compiled ascent ``run(variables, channels int [N], rng) -> (images
    [N, H, W, C], activation before [N], activation after [N])`` for ``fn(variables, x [N, H, W,
    C]) -> layer output`` (the variables are an argument, not constants baked into the program).
    """
    h, w, c = (int(s) for s in input_shape)
    cfg = config

    def run(variables, channels, rng):
        def activation(x, channels):
            return unit_objective(fn(variables, x), channels, objective)

        n = channels.shape[0]
        init_rng, loop_rng = jax.random.split(rng)
        if cfg.init == "noise":
            x0 = 0.1 * jax.random.normal(init_rng, (n, h, w, c), jnp.float32)
        else:
            x0 = jnp.zeros((n, h, w, c), jnp.float32)
        grad_fn = jax.grad(lambda x: jnp.sum(activation(x, channels)))

        def body(step, x):
            key = jax.random.fold_in(loop_rng, step)
            if cfg.jitter:
                dy, dx = jax.random.randint(key, (2,), -cfg.jitter, cfg.jitter + 1)
                g = grad_fn(jnp.roll(x, (dy, dx), axis=(1, 2)))
                g = jnp.roll(g, (-dy, -dx), axis=(1, 2))
            else:
                g = grad_fn(x)
            g = g / (jnp.mean(jnp.abs(g), axis=(1, 2, 3), keepdims=True) + 1e-8)
            x = (x + cfg.learning_rate * g) * (1.0 - cfg.l2_decay)
            if cfg.blur_every:
                x = jnp.where(step % cfg.blur_every == cfg.blur_every - 1,
                              gaussian_blur(x, cfg.blur_sigma), x)
            return jnp.clip(x, *cfg.value_range)

        x = jax.lax.fori_loop(0, cfg.steps, body, x0)
        return x, activation(x0, channels), activation(x, channels)

    return jax.jit(run)


def maximise_activation(model, variables, layer: str, channels: Sequence[int], *,
                        input_shape: Sequence[int], config: AscentConfig = AscentConfig(),
                        objective: str = "mean", seed: int = 0, **call_kwargs):
    """Images that maximise channels of a layer.

    Args:
      model, variables: the network (pass ``train=False`` in ``call_kwargs``).
      layer: a layer name (:func:`vai_jax.analysis.layers.layer_shapes`; unknown names raise a
        ValueError listing the valid ones); ``"logits"`` maximises class scores.
      channels: channel (or class) indices, one image each.
      input_shape: ``(H, W, C)`` of the model input.
      config: :class:`AscentConfig`.
      objective: see :func:`unit_objective`.

    Returns:
      ``(images float32 [N, H, W, C] in model-input units, before [N], after [N])`` where
      ``before``/``after`` are the objective at the initial and final image.
    """
    h, w, c = (int(s) for s in input_shape)
    shapes = layer_shapes(model, variables, (1, h, w, c), **call_kwargs)
    check_layers([layer], list(shapes))
    out_shape = shapes[layer]
    fn = lambda v, x: collect_outputs(model, v, x, [layer], call_kwargs)[layer]
    channels = np.asarray(channels, np.int32)
    if channels.ndim != 1 or channels.size == 0:
        raise ValueError(f"channels must be a non-empty 1-D sequence; got shape {channels.shape}")
    if channels.min() < 0 or channels.max() >= out_shape[-1]:
        raise ValueError(f"channels must be in [0, {out_shape[-1]}) for layer {layer!r} "
                         f"(output {out_shape}); got {channels.tolist()}")
    run = make_ascent(fn, (h, w, c), config, objective=objective)
    x, before, after = run(variables, jnp.asarray(channels), jax.random.PRNGKey(seed))
    return np.asarray(x), np.asarray(before), np.asarray(after)


def to_display(images, *, percentile: float = 99.0) -> np.ndarray:
    """Map model-input-space images ``[N, H, W, C]`` to ``[0, 1]`` for display: per image,
    centre on its mean and scale by its ``percentile`` of ``|x − mean|`` (0.5 = mean)."""
    x = np.asarray(images, np.float64)
    centred = x - x.mean(axis=(1, 2, 3), keepdims=True)
    scale = np.percentile(np.abs(centred).reshape(len(x), -1), percentile, axis=1)
    scale = np.where(scale > 0, scale, 1.0)[:, None, None, None]
    return np.clip(0.5 + 0.5 * centred / scale, 0, 1).astype(np.float32)
