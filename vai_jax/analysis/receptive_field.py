"""Receptive fields of units, computed from the architecture and checked by gradients.

:func:`receptive_field` traces the function from the input image to a layer (a jaxpr) and
follows every operation that moves pixels: convolutions (kernel, stride, dilation, padding),
pooling windows, pads and strided slices. Along each spatial axis a unit ``i`` of any
intermediate array depends on the input pixels ``[jump·i + lo, jump·i + hi]`` (inclusive, before
clipping to the image), and each operation updates ``(jump, lo, hi)``:

* window op (kernel ``k``, stride ``s``, dilation ``d``, padding before ``p``):
  ``jump' = jump·s``, ``lo' = lo − jump·p``, ``hi' = hi + jump·(d·(k − 1) − p)``;
* pad by ``p`` before: ``lo -= jump·p``, ``hi -= jump·p``; slice from ``a`` with stride ``s``:
  ``lo += jump·a``, ``hi += jump·a``, ``jump *= s``;
* elementwise ops of several branches (residual additions, concatenation of channels): the
  union ``min(lo), max(hi)`` (branches must agree on ``jump``);
* reductions over a spatial axis (global pooling, squeeze-and-excitation): the whole image.

This is the classic ``r_l = r_{l−1} + (k_l − 1)·Π s`` recursion (:func:`vai_jax.nn.receptive_field`)
generalised to any graph. The field is the bounding square: dilated convolutions whose taps are
further apart than the field below them leave holes in it (the "gridding" artefact).
:func:`gradient_support` is the independent check: the input pixels
where the gradient of one output unit is non-zero. For networks without zeroing
non-linearities (or with all units active) the two agree on the set clipped to the image;
ReLU/max-pool can only make the gradient support smaller.

Frames: ``(row, col)`` pixel indices; a unit's field is rows ``[r0, r1)`` and cols ``[c0, c1)``
(exclusive ends; may extend outside ``[0, H) x [0, W)`` into the padding).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from vai_jax._validation import check_array
from vai_jax.analysis.layers import collect_outputs, check_layers, layer_shapes

_GLOBAL = "global"


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of every unit of a feature map ``[B, h, w, C]`` on an ``H x W`` input.

    Attributes:
      jump: ``(jump_rows, jump_cols)``: input pixels between neighbouring units (total stride).
      start: ``(row, col)`` of the first input pixel in unit ``(0, 0)``'s field (may be < 0).
      size: ``(rows, cols)`` pixels per side of every unit's field (before clipping).
      input_size: ``(H, W)``.
      is_global: the units depend on the whole image (global pooling, SE, dense layers); then
        ``jump`` is 0 and the field is the whole image.
    """

    jump: tuple[int, int]
    start: tuple[int, int]
    size: tuple[int, int]
    input_size: tuple[int, int]
    is_global: bool = False

    def box(self, i: int, j: int, *, clip: bool = False) -> tuple[int, int, int, int]:
        """``(r0, c0, r1, c1)`` (ends exclusive) of unit ``(i, j)``; ``clip`` to the image."""
        if self.is_global:
            return (0, 0) + tuple(self.input_size)
        r0 = self.jump[0] * i + self.start[0]
        c0 = self.jump[1] * j + self.start[1]
        r1, c1 = r0 + self.size[0], c0 + self.size[1]
        if clip:
            h, w = self.input_size
            r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, h), min(c1, w)
        return r0, c0, r1, c1

    def center(self, i: int, j: int) -> tuple[float, float]:
        """``(x, y)`` centre of unit ``(i, j)``'s field in the continuous pixel frame."""
        r0, c0, r1, c1 = self.box(i, j)
        return (c0 + c1) / 2.0, (r0 + r1) / 2.0

    def mask(self, i: int, j: int) -> np.ndarray:
        """bool ``[H, W]``: the input pixels in unit ``(i, j)``'s field (clipped)."""
        m = np.zeros(self.input_size, bool)
        r0, c0, r1, c1 = self.box(i, j, clip=True)
        m[r0:r1, c0:c1] = True
        return m


# --------------------------------------------------------------------------------- tracing
# A traced variable's state: None (does not depend on the image), _GLOBAL, or a tuple of two
# (axis, jump, lo, hi) entries for the image's rows and columns.

class _Unsupported(ValueError):
    pass


def _union(states, prim):
    tracked = [s for s in states if s is not None]
    if not tracked:
        return None
    if any(s is _GLOBAL for s in tracked):
        return _GLOBAL
    first = tracked[0]
    out = []
    for d in range(2):
        axes = {s[d][0] for s in tracked}
        jumps = {s[d][1] for s in tracked}
        if len(axes) != 1 or len(jumps) != 1:
            raise _Unsupported(f"operation {prim} combines branches with different layouts or "
                               f"strides ({[s[d] for s in tracked]})")
        out.append((first[d][0], first[d][1], min(s[d][2] for s in tracked),
                    max(s[d][3] for s in tracked)))
    return tuple(out)


def _window(state, ks, ss, ds, pads):
    """Apply a window op with per-axis kernel/stride/dilation/padding-before dicts."""
    out = []
    for axis, jump, lo, hi in state:
        k, s, d, p = ks.get(axis, 1), ss.get(axis, 1), ds.get(axis, 1), pads.get(axis, 0)
        out.append((axis, jump * s, lo - jump * p, hi + jump * (d * (k - 1) - p)))
    return tuple(out)


def _remap(state, mapping, prim):
    """Move tracked axes to new positions; an axis missing from ``mapping`` -> global."""
    out = []
    for axis, jump, lo, hi in state:
        if axis not in mapping or mapping[axis] is None:
            return _GLOBAL
        out.append((mapping[axis], jump, lo, hi))
    return tuple(out)


def _sub_jaxprs(eqn):
    subs = []
    for v in eqn.params.values():
        if isinstance(v, jcore.ClosedJaxpr):
            subs.append(v.jaxpr)
        elif isinstance(v, jcore.Jaxpr):
            subs.append(v)
    return subs


def _eqn_rule(eqn, ins):
    prim = eqn.primitive.name
    p = eqn.params
    n_out = len(eqn.outvars)
    tracked = [s for s in ins if s is not None]
    if not tracked:
        return [None] * n_out
    if any(s is _GLOBAL for s in tracked):
        return [_GLOBAL] * n_out
    state = tracked[0]

    if prim == "conv_general_dilated":
        if ins[1] is not None:
            raise _Unsupported("convolution whose kernel depends on the image")
        if any(d != 1 for d in p["lhs_dilation"]):
            raise _Unsupported("transposed convolution (lhs_dilation) is not supported")
        dn = p["dimension_numbers"]
        lhs_spatial = dn.lhs_spec[2:]
        rhs_spatial = dn.rhs_spec[2:]
        out_spatial = dn.out_spec[2:]
        kshape = eqn.invars[1].aval.shape
        ks, ss, ds, pads, mapping = {}, {}, {}, {}, {}
        for n, axis in enumerate(lhs_spatial):
            ks[axis] = kshape[rhs_spatial[n]]
            ss[axis] = p["window_strides"][n]
            ds[axis] = p["rhs_dilation"][n]
            pads[axis] = p["padding"][n][0]
            mapping[axis] = out_spatial[n]
        for axis, *_ in state:
            if axis not in mapping:
                return [_GLOBAL]  # a convolution reducing the image axis as a channel
        return [_remap(_window(state, ks, ss, ds, pads), mapping, prim)]

    if prim.startswith("reduce_window") or prim in ("select_and_gather_add",):
        if prim not in ("reduce_window_max", "reduce_window_min", "reduce_window_sum",
                        "reduce_window"):
            raise _Unsupported(f"operation {prim}")
        if any(b != 1 for b in p["base_dilation"]):
            raise _Unsupported("pooling with base dilation is not supported")
        ks = dict(enumerate(p["window_dimensions"]))
        ss = dict(enumerate(p["window_strides"]))
        ds = dict(enumerate(p["window_dilation"]))
        pads = {a: lo for a, (lo, _) in enumerate(p["padding"])}
        out = _window(state, ks, ss, ds, pads)
        return [out] * n_out

    if prim == "pad":
        if ins[0] is None:
            return [None]
        cfg = p["padding_config"]
        out = []
        for axis, jump, lo, hi in state:
            before, _, interior = cfg[axis]
            if interior:
                raise _Unsupported("interior padding of an image axis")
            out.append((axis, jump, lo - jump * before, hi - jump * before))
        return [tuple(out)]

    if prim == "slice":
        strides = p["strides"] or (1,) * len(p["start_indices"])
        out = []
        for axis, jump, lo, hi in state:
            a = p["start_indices"][axis]
            out.append((axis, jump * strides[axis], lo + jump * a, hi + jump * a))
        return [tuple(out)]

    if prim in ("reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax", "argmin",
                "reduce_and", "reduce_or"):
        axes = tuple(p["axes"])
        kept = [a for a in range(len(eqn.invars[0].aval.shape)) if a not in axes]
        mapping = {a: kept.index(a) if a in kept else None for a in range(len(kept) + len(axes))}
        return [_remap(state, mapping, prim)]

    if prim == "transpose":
        perm = p["permutation"]
        return [_remap(state, {old: new for new, old in enumerate(perm)}, prim)]

    if prim == "broadcast_in_dim":
        dims = p["broadcast_dimensions"]
        in_shape = eqn.invars[0].aval.shape
        for axis, *_ in state:
            if in_shape[axis] != p["shape"][dims[axis]]:
                return [_GLOBAL]  # a pooled value broadcast back over the image
        return [_remap(state, {a: dims[a] for a in range(len(dims))}, prim)]

    if prim in ("reshape", "squeeze", "expand_dims"):
        in_shape = eqn.invars[0].aval.shape
        out_shape = eqn.outvars[0].aval.shape
        mapping = {}
        for axis, *_ in state:
            before = int(np.prod(in_shape[:axis]))
            match = [b for b in range(len(out_shape)) if out_shape[b] == in_shape[axis]
                     and int(np.prod(out_shape[:b])) == before]
            mapping[axis] = match[0] if match else None
        if any(v is None for v in mapping.values()):
            raise _Unsupported(f"{prim} from {in_shape} to {out_shape} mixes an image axis")
        return [_remap(state, mapping, prim)]

    if prim == "concatenate":
        for axis, *_ in state:
            if axis == p["dimension"]:
                raise _Unsupported("concatenation along an image axis")
        return [_union(ins, prim)]

    if prim == "split":
        for axis, *_ in state:
            if axis == p["axis"]:
                raise _Unsupported("split along an image axis")
        return [state] * n_out

    if prim == "dot_general":
        (lc, rc), (lb, rb) = p["dimension_numbers"]
        if ins[1] is not None and ins[0] is not None:
            return [_GLOBAL]
        side = 0 if ins[0] is not None else 1
        shape = eqn.invars[side].aval.shape
        contract, batch = (lc, lb) if side == 0 else (rc, rb)
        free = [a for a in range(len(shape)) if a not in contract and a not in batch]
        other_shape = eqn.invars[1 - side].aval.shape
        other_c, other_b = (rc, rb) if side == 0 else (lc, lb)
        n_other_free = len(other_shape) - len(other_c) - len(other_b)
        mapping = {}
        for axis in range(len(shape)):
            if axis in batch:
                mapping[axis] = list(batch).index(axis)
            elif axis in free:
                offset = len(batch) + (0 if side == 0 else
                                       len([a for a in range(len(other_shape))
                                            if a not in other_c and a not in other_b]))
                mapping[axis] = offset + free.index(axis)
            else:
                mapping[axis] = None
        del n_other_free
        return [_remap(state, mapping, prim)]

    if prim in ("gather", "scatter", "scatter-add", "scatter_add", "dynamic_slice",
                "dynamic_update_slice", "cumsum", "cummax", "rev", "sort", "while", "cond",
                "scan", "fft", "conv_general_dilated_patches", "select_and_scatter_add"):
        raise _Unsupported(f"operation {prim} on image-dependent values")

    # Element-wise (add, mul, max, select_n, convert_element_type, custom calls handled by the
    # caller...): every image-dependent operand must have the output's shape.
    out_shape = eqn.outvars[0].aval.shape
    for s, v in zip(ins, eqn.invars):
        if s is not None and tuple(v.aval.shape) != tuple(out_shape):
            raise _Unsupported(f"operation {prim} changes the shape of an image-dependent value "
                               f"({v.aval.shape} -> {out_shape})")
    return [_union(ins, prim)] * n_out


def _run_jaxpr(jaxpr, in_states):
    env = {}

    def read(v):
        if isinstance(v, jcore.Literal):
            return None
        return env.get(v)

    for v, s in zip(jaxpr.invars, in_states):
        env[v] = s
    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        subs = _sub_jaxprs(eqn)
        if any(s is not None for s in ins) and subs:
            sub = subs[0]
            if len(sub.invars) != len(ins):  # e.g. custom_vjp with extra residual inputs
                raise _Unsupported(f"operation {eqn.primitive.name} with a nested program")
            outs = _run_jaxpr(sub, ins)
        else:
            outs = _eqn_rule(eqn, ins)
        for v, s in zip(eqn.outvars, outs):
            env[v] = s
    return [read(v) for v in jaxpr.outvars]


def receptive_field(fn: Callable, input_shape: Sequence[int], *, input_dtype=jnp.float32
                    ) -> ReceptiveField:
    """Receptive field of the units of ``fn(x)`` (a feature map) from the traced architecture.

    Args:
      fn: ``x [B, H, W, C] -> [B, h, w, C']`` (a network up to some layer; see
        :func:`layer_receptive_field`). It is only traced (``make_jaxpr``), never run.
      input_shape: ``(B, H, W, C)``.

    Returns:
      :class:`ReceptiveField`; ``is_global`` when the output depends on the whole image
      (global pooling, squeeze-and-excitation, dense layers over pixels, a rank-2 output).

    Raises:
      ValueError: an operation the analysis cannot follow (gather, transposed convolution,
        branches with different strides), naming it.
    """
    return _traced_field(fn, input_shape, input_dtype)


def _traced_field(fn, input_shape, input_dtype, *args):
    """Trace ``fn(x, *args)`` (``args`` may be abstract; they do not depend on the image)."""
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 4:
        raise ValueError(f"input_shape must be (B, H, W, C); got {input_shape}")
    closed = jax.make_jaxpr(fn)(jax.ShapeDtypeStruct(input_shape, input_dtype), *args)
    start = ((1, 1, 0, 0), (2, 1, 0, 0))
    n_rest = len(closed.jaxpr.invars) - 1
    try:
        outs = _run_jaxpr(closed.jaxpr, [start] + [None] * n_rest)
    except _Unsupported as err:
        raise ValueError(f"receptive_field cannot follow the network: {err}") from None
    out_aval = closed.jaxpr.outvars[0].aval
    state = outs[0]
    hw = input_shape[1:3]
    if state is None:
        raise ValueError("fn's output does not depend on its input")
    if state is _GLOBAL or len(out_aval.shape) != 4 or state[0][0] != 1 or state[1][0] != 2:
        return ReceptiveField((0, 0), (0, 0), hw, hw, is_global=True)
    (_, jr, lr, hr), (_, jc, lc, hc) = state
    return ReceptiveField((jr, jc), (lr, lc), (hr - lr + 1, hc - lc + 1), hw)


def layer_receptive_field(model, variables, layer: str, input_shape: Sequence[int],
                          **call_kwargs) -> ReceptiveField:
    """:func:`receptive_field` of the layer named ``layer`` (see
    :mod:`vai_jax.analysis.layers`; unknown names raise a ValueError listing the valid ones).
    ``call_kwargs`` go to the model (pass ``train=False``)."""
    valid = layer_shapes(model, variables, input_shape, **call_kwargs)
    check_layers([layer], list(valid))
    fn = lambda x, v: collect_outputs(model, v, x, [layer], call_kwargs)[layer]
    return _traced_field(fn, input_shape, jnp.float32, variables)


def gradient_support(fn: Callable, x, units: Sequence[tuple[int, int]], *, channel: int = 0
                     ) -> np.ndarray:
    """Input pixels that each unit ``(i, j, channel)`` of ``fn(x)[0]`` has a non-zero gradient on.

    Args:
      fn: ``x [B, H, W, C] -> [B, h, w, C']``.
      x: ``[B, H, W, C]`` float input (only example 0 matters for the unit).
      units: ``[(i, j), ...]`` positions in the output map.
      channel: the output channel.

    Returns:
      bool ``[U, H, W]``: ``d fn(x)[0, i, j, channel] / d x[0, r, c, k] != 0`` for some ``k``.
      (One compiled program for all units.)
    """
    x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
    units = jnp.asarray(np.asarray(units, np.int32).reshape(-1, 2))

    @jax.jit
    def support(x, units):
        def one(ij):
            g = jax.grad(lambda inp: fn(inp)[0, ij[0], ij[1], channel])(x)
            return jnp.any(g[0] != 0, axis=-1)

        return jax.lax.map(one, units)

    return np.asarray(support(x, units))


def support_box(mask) -> tuple[int, int, int, int] | None:
    """``(r0, c0, r1, c1)`` (ends exclusive) bounding the True pixels of ``mask [H, W]``."""
    mask = np.asarray(mask, bool)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1
