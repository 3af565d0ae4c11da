"""Back-propagation as explicit message passing on a directed acyclic graph of units
(Rumelhart, Hinton & Williams, 1986), for networks with arbitrary skip and dense connections.

Units ``0 … U-1`` are numbered in topological order. ``mask [U, U]`` (bool) holds the edges:
``mask[c, p]`` is the edge ``p → c`` and may only be True for ``p < c`` (strictly lower
triangular). ``weights [U, U]`` holds the edge weights ``W[c, p]`` (entries off the mask are
ignored and get zero gradient). Every unit has the same activation ``h``.

Forward messages (one pass in increasing unit order)::

    M_c = x_c                       for an input unit (the inputs are given; no parents)
    M_c = Σ_{p → c} W[c, p] h(M_p)  otherwise (0 for a non-input unit without parents)

The network's outputs are ``y_o = h(M_o)`` for the output units ``o`` (or ``y_o = M_o`` with
``linear_outputs``), and the loss is ``ℓ(y)``, a scalar. Output units may also feed other
units.

Backward messages ``V_c = ∂ℓ/∂M_c`` (one pass in decreasing unit order)::

    V_c = h'(M_c) · (g_c + Σ_{c → k} W[k, c] V_k)     (g_c = ∂ℓ/∂y_c, 0 for a non-output)
    V_c = g_c + h'(M_c) · Σ_{c → k} W[k, c] V_k       (output units with linear_outputs)

and the gradients are ``∂ℓ/∂W[c, p] = h(M_p) · V_c`` (summed over the batch) and
``∂ℓ/∂x_c = V_c`` for the inputs. The seed ``g = ∂ℓ/∂y`` is the only derivative not computed
by messages: the derivative of the loss function alone, taken with ``jax.grad``.

Both passes are ``lax.fori_loop`` loops over units, so they run under ``jax.jit``; leading
batch axes ``[...]`` are carried along. The graph (``mask``, input and output units) fixes the
structure and must be concrete; it is validated on every call.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vai_jax._validation import check_array, is_concrete

_ACTIVATIONS = {
    "tanh": (jnp.tanh, lambda m: 1.0 - jnp.tanh(m) ** 2),
    "softplus": (jax.nn.softplus, jax.nn.sigmoid),
    "sigmoid": (jax.nn.sigmoid, lambda m: jax.nn.sigmoid(m) * (1.0 - jax.nn.sigmoid(m))),
    "relu": (jax.nn.relu, lambda m: (m > 0).astype(m.dtype)),
    "identity": (lambda m: m, jnp.ones_like),
}


class Backprop(NamedTuple):
    """The result of :func:`backprop`."""

    loss: jax.Array            # scalar
    weight_grad: jax.Array     # [U, U], zero off the mask
    input_grad: jax.Array      # [..., n_in]
    messages: jax.Array        # [..., U] forward messages M
    deltas: jax.Array          # [..., U] backward messages V = ∂ℓ/∂M


def activation_pair(activation: str | Callable):
    """``(h, h')`` for a name in ``tanh, softplus, sigmoid, relu, identity`` (closed-form
    derivatives), or for an elementwise callable (derivative by ``jax.jvp``)."""
    if isinstance(activation, str):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)} or a callable; "
                             f"got {activation!r}")
        return _ACTIVATIONS[activation]
    if not callable(activation):
        raise TypeError(f"activation must be a name or a callable; got {type(activation)}")
    return activation, _derivative(activation)


@functools.lru_cache(maxsize=64)  # one derivative function per activation: jit caches hit
def _derivative(activation):
    return lambda m: jax.jvp(activation, (m,), (jnp.ones_like(m),))[1]


def topological_order(mask) -> np.ndarray:
    """A permutation ``order`` of the units such that ``mask[order][:, order]`` is strictly lower
    triangular (Kahn's algorithm, lowest index first).

    Args:
      mask: bool ``[U, U]``, ``mask[c, p]`` the edge ``p → c``, concrete.

    Raises:
      ValueError: the graph has a cycle (the units on cycles are named).
    """
    mask = _check_mask(mask)
    parents = mask.sum(axis=1)
    order, ready = [], sorted(np.flatnonzero(parents == 0).tolist())
    while ready:
        p = ready.pop(0)
        order.append(p)
        for c in np.flatnonzero(mask[:, p]):
            parents[c] -= 1
            if parents[c] == 0:
                ready.append(int(c))
                ready.sort()
    if len(order) < mask.shape[0]:
        stuck = sorted(set(range(mask.shape[0])) - set(order))
        raise ValueError(f"mask has a cycle: units {stuck} are on or behind a cycle")
    return np.asarray(order)


def _check_mask(mask):
    if not is_concrete(mask):
        raise TypeError("mask must be concrete (NumPy or a committed array): it fixes the "
                        "graph's structure; got a traced value")
    mask = check_array(mask, "mask", ndim=2, kind="bool", shape_hint="[U, U]")
    if mask.shape[0] != mask.shape[1]:
        raise ValueError(f"mask must be square [U, U]; got shape {tuple(mask.shape)}")
    return np.asarray(mask)


def _check_graph(weights, mask):
    """Validate ``weights`` and a topologically ordered ``mask``; returns NumPy ``mask``."""
    mask = _check_mask(mask)
    weights = check_array(weights, "weights", ndim=2, kind="floating", shape_hint="[U, U]")
    if tuple(weights.shape) != mask.shape:
        raise ValueError(f"weights must have mask's shape {mask.shape}; got "
                         f"{tuple(weights.shape)}")
    bad = np.argwhere(np.triu(mask))
    if bad.size:
        topological_order(mask)  # raises for a cycle
        c, p = bad[0]
        raise ValueError(f"mask must be strictly lower triangular (units in topological order, "
                         f"mask[c, p] only for p < c); found the edge {p} -> {c}. Reorder the "
                         f"units with topological_order(mask)")
    return weights, mask


def _check_units(units, num_units, name):
    if not is_concrete(units):
        raise TypeError(f"{name} must be concrete; got a traced value")
    units = np.asarray(units)
    if units.ndim != 1 or units.size == 0 or not np.issubdtype(units.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty 1-D sequence of unit indices; got "
                         f"{units!r}")
    if units.min() < 0 or units.max() >= num_units:
        raise ValueError(f"{name} must lie in [0, {num_units}); got {units.tolist()}")
    if len(set(units.tolist())) != units.size:
        raise ValueError(f"{name} must be distinct; got {units.tolist()}")
    return units


def forward_messages(weights, mask, inputs, *, input_units: Sequence[int],
                     activation: str | Callable = "tanh"):
    """Forward pass: ``M [..., U]`` from ``inputs [..., n_in]`` (``M`` of ``input_units``).

    Raises ValueError for a mask that is not strictly lower triangular (naming the first edge
    against the order, or the cycle), mismatched shapes, or input units with parents.
    """
    weights, mask = _check_graph(weights, mask)
    units = _check_units(input_units, mask.shape[0], "input_units")
    with_parents = [int(u) for u in units if mask[u].any()]
    if with_parents:
        raise ValueError(f"input_units must have no parents; units {with_parents} have some")
    inputs = check_array(inputs, "inputs", min_ndim=1, kind="floating", shape_hint="[..., n_in]")
    if inputs.shape[-1] != units.size:
        raise ValueError(f"inputs must have last dimension len(input_units) = {units.size}; got "
                         f"shape {tuple(inputs.shape)}")
    h, _ = activation_pair(activation)
    is_input = np.zeros(mask.shape[0], bool)
    is_input[units] = True
    return _forward(jnp.asarray(weights, inputs.dtype), mask, inputs, units, is_input, h)


# The graph travels as array arguments, so one compilation serves every graph of a size.
@functools.partial(jax.jit, static_argnames=("h",))
def _forward(weights, mask, inputs, units, is_input, h):
    num_units = mask.shape[0]
    given = jnp.zeros(inputs.shape[:-1] + (num_units,), inputs.dtype).at[..., units].set(inputs)

    def unit(c, m):
        incoming = jnp.sum(jnp.where(mask[c], weights[c] * h(m), 0.0), axis=-1)
        return m.at[..., c].set(jnp.where(is_input[c], given[..., c], incoming))

    return lax.fori_loop(0, num_units, unit, jnp.zeros_like(given))


def backward_messages(weights, mask, messages, output_grads, *, output_units: Sequence[int],
                      activation: str | Callable = "tanh", linear_outputs: bool = False):
    """Backward pass: ``V [..., U] = ∂ℓ/∂M`` from the forward ``messages [..., U]`` and the
    seed ``output_grads [..., n_out] = ∂ℓ/∂y`` of the outputs (see the module docstring)."""
    weights, mask = _check_graph(weights, mask)
    units = _check_units(output_units, mask.shape[0], "output_units")
    messages = check_array(messages, "messages", min_ndim=1, kind="floating",
                           shape_hint="[..., U]")
    if messages.shape[-1] != mask.shape[0]:
        raise ValueError(f"messages must have last dimension U = {mask.shape[0]}; got shape "
                         f"{tuple(messages.shape)}")
    output_grads = check_array(output_grads, "output_grads", kind="floating")
    want = tuple(messages.shape[:-1]) + (units.size,)
    if tuple(output_grads.shape) != want:
        raise ValueError(f"output_grads must have shape {want}; got {tuple(output_grads.shape)}")
    _, dh = activation_pair(activation)
    linear = np.zeros(mask.shape[0], bool)
    linear[units] = bool(linear_outputs)
    return _backward(jnp.asarray(weights, messages.dtype), mask, messages,
                     jnp.asarray(output_grads, messages.dtype), units, linear, dh)


@functools.partial(jax.jit, static_argnames=("dh",))
def _backward(weights, mask, messages, output_grads, units, linear, dh):
    num_units = mask.shape[0]
    seed = jnp.zeros_like(messages).at[..., units].set(output_grads)

    def unit(i, v):
        c = num_units - 1 - i
        from_children = jnp.sum(jnp.where(mask[:, c], weights[:, c] * v, 0.0), axis=-1)
        slope = dh(messages[..., c])
        delta = jnp.where(linear[c], seed[..., c] + slope * from_children,
                          slope * (seed[..., c] + from_children))
        return v.at[..., c].set(delta)

    return lax.fori_loop(0, num_units, unit, jnp.zeros_like(messages))


def weight_gradients(messages, deltas, mask, *, activation: str | Callable = "tanh"):
    """``∂ℓ/∂W [U, U] = Σ_batch V_c h(M_p)`` on the mask's edges, zero elsewhere."""
    mask = _check_mask(mask)
    h, _ = activation_pair(activation)
    grad = jnp.einsum("...c,...p->cp", deltas, h(messages), precision=lax.Precision.HIGHEST)
    return jnp.where(jnp.asarray(mask), grad, 0.0)


def backprop(weights, mask, inputs, loss_fn: Callable, *, input_units: Sequence[int],
             output_units: Sequence[int], activation: str | Callable = "tanh",
             linear_outputs: bool = False) -> Backprop:
    """Loss and gradients of ``loss_fn(y)`` by the forward and backward message passes.

    Args:
      weights: floating ``[U, U]``. mask: bool ``[U, U]``, strictly lower triangular, concrete.
      inputs: floating ``[..., n_in]``, the messages of ``input_units``.
      loss_fn: ``y [..., n_out] -> scalar`` on the outputs ``y`` (ordered as ``output_units``).
      input_units, output_units: unit indices (concrete); inputs have no parents.
      activation: a name (``tanh``, ``softplus``, ``sigmoid``, ``relu``, ``identity``) or an
        elementwise callable.
      linear_outputs: ``y = M`` instead of ``h(M)`` at the output units.

    Returns:
      :class:`Backprop` with the loss, ``weight_grad [U, U]``, ``input_grad [..., n_in]`` and
      both message arrays. Equal to ``jax.grad`` of the same loss written directly.
    """
    messages = forward_messages(weights, mask, inputs, input_units=input_units,
                                activation=activation)
    out_units = _check_units(output_units, messages.shape[-1], "output_units")
    h, _ = activation_pair(activation)
    at_outputs = messages[..., out_units]
    y = at_outputs if linear_outputs else h(at_outputs)
    loss, seed = jax.value_and_grad(loss_fn)(y)
    deltas = backward_messages(weights, mask, messages, seed, output_units=out_units,
                               activation=activation, linear_outputs=linear_outputs)
    return Backprop(loss=loss,
                    weight_grad=weight_gradients(messages, deltas, mask, activation=activation),
                    input_grad=deltas[..., np.asarray(input_units)],
                    messages=messages, deltas=deltas)
