"""Linear-chain conditional random fields: log partition, marginals, Viterbi decoding and
log-likelihood (Lafferty, McCallum & Pereira, 2001), with hidden states for the latent-dynamic
CRF (Morency, Quattoni & Darrell, 2007) and the hidden CRF (Quattoni et al., 2007).

A chain has ``T`` steps and ``S`` states. ``unary [..., T, S]`` holds per-step state scores
(log-potentials, higher is more likely), ``transitions [S, S]`` the score ``transitions[i, j]``
of going from state ``i`` at one step to state ``j`` at the next, and the optional
``initial [S]`` the score of starting in each state. A state path ``s`` scores
``initial[s_0] + Σ_t unary[t, s_t] + Σ_t transitions[s_{t-1}, s_t]`` and has probability
``exp(score − log Z)``. Scores are finite or ``-inf`` (a forbidden state or move); ``+inf`` and
NaN are not supported.

``mask [..., T]`` (bool) marks the steps that exist. The usual mask is a prefix (ragged
lengths: ``True`` for the first ``length`` steps, padding after). In general a ``False`` step is
removed from the chain and its neighbours are joined by one transition. A sequence with no step
has ``log Z = 0`` (the empty path), zero marginals, path ``-1`` everywhere and score 0.

Hidden states: ``state_to_label [S]`` maps each state to one of ``L`` labels (every label owns at
least one state). The latent-dynamic CRF labels each step and sums over the state paths whose
states carry the step's label; the hidden CRF gives one label per sequence and sums over paths
that use only that label's states. Both restrict the unaries with ``-inf`` and run the same
forward algorithm.

Everything runs the forward (and backward) recursion with ``jax.lax.scan`` over time, batched
over the leading axes, and works under ``jax.jit``, ``jax.vmap`` and ``jax.grad``. Computation is
in float32 (float64 when an input is float64), so bfloat16/float16 inputs never overflow; results
have the promoted dtype of ``unary`` and ``transitions``. Shapes and dtypes are checked on
every call, also under ``jit``; label ranges only on concrete values (inside ``jit`` a label out
of range at a valid step gives a NaN log-likelihood). ``state_to_label`` fixes the model's
structure and must always be concrete.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vai_jax._validation import check_array, is_concrete
from vai_jax.ops.numerics import log_softmax, logsumexp

_HIGHEST = lax.Precision.HIGHEST


class _Chain(NamedTuple):
    unary: jax.Array        # [B, T, S] compute dtype
    transitions: jax.Array  # [S, S]
    initial: jax.Array      # [S]
    mask: jax.Array         # [B, T] bool
    batch_shape: tuple
    out_dtype: jnp.dtype


def _prepare(unary, transitions, mask, initial) -> _Chain:
    unary = check_array(unary, "unary", min_ndim=2, kind="floating", shape_hint="[..., T, S]")
    *batch, t, s = unary.shape
    if t < 1 or s < 1:
        raise ValueError(f"unary [..., T, S] needs T >= 1 and S >= 1; got shape {unary.shape}")
    transitions = check_array(transitions, "transitions", ndim=2, kind="floating",
                              shape_hint="[S, S]")
    if transitions.shape[0] != transitions.shape[1]:
        raise ValueError(f"transitions must be square [S, S]; got shape {transitions.shape}")
    if transitions.shape[0] != s:
        raise ValueError(f"transitions must be [S, S] with S = unary.shape[-1] = {s}; got "
                         f"shape {transitions.shape}")
    dtypes = [unary.dtype, transitions.dtype]
    if initial is not None:
        initial = check_array(initial, "initial", ndim=1, kind="floating", shape_hint="[S]")
        if initial.shape[0] != s:
            raise ValueError(f"initial must be [S] with S = unary.shape[-1] = {s}; got shape "
                             f"{initial.shape}")
        dtypes.append(initial.dtype)
    if mask is not None:
        mask = check_array(mask, "mask", kind="bool", shape_hint="[..., T]")
        if tuple(mask.shape) != tuple(unary.shape[:-1]):
            raise ValueError(f"mask must have shape unary.shape[:-1] = {tuple(unary.shape[:-1])};"
                             f" got {tuple(mask.shape)}")
    out_dtype = jnp.result_type(*dtypes)
    ct = jnp.float64 if jnp.float64 in dtypes else jnp.float32
    b = int(np.prod(batch, dtype=np.int64))
    return _Chain(
        unary=jnp.asarray(unary, ct).reshape(b, t, s),
        transitions=jnp.asarray(transitions, ct),
        initial=jnp.zeros((s,), ct) if initial is None else jnp.asarray(initial, ct),
        mask=jnp.ones((b, t), bool) if mask is None else jnp.asarray(mask).reshape(b, t),
        batch_shape=tuple(batch), out_dtype=out_dtype)


# The recursions below take the flattened arrays of a _Chain (unary [B, T, S], transitions,
# initial, mask [B, T]); the public functions validate eagerly and call jitted cores.

def _forward(unary, transitions, initial, mask):
    """Forward recursion: ``alphas [T, B, S]`` (a skipped step repeats the previous value) and
    ``log_z [B]``."""
    b, _, s = unary.shape

    def step(carry, xs):
        alpha, started = carry
        u_t, m_t = xs
        moved = logsumexp(alpha[:, :, None] + transitions, axis=1)
        new = jnp.where(started[:, None], moved, initial) + u_t
        alpha = jnp.where(m_t[:, None], new, alpha)
        return (alpha, started | m_t), alpha

    init = (jnp.zeros((b, s), unary.dtype), jnp.zeros((b,), bool))
    (alpha, started), alphas = lax.scan(step, init, (jnp.swapaxes(unary, 0, 1), mask.T))
    return alphas, jnp.where(started, logsumexp(alpha, axis=-1), 0.0)


def _backward(unary, transitions, mask):
    """Backward recursion: ``betas [T, B, S]``, the log-sum of the scores after each step."""
    b, _, s = unary.shape

    def step(g, xs):
        u_t, m_t = xs
        moved = logsumexp(transitions + (u_t + g)[:, None, :], axis=-1)
        return jnp.where(m_t[:, None], moved, g), g

    _, betas = lax.scan(step, jnp.zeros((b, s), unary.dtype),
                        (jnp.swapaxes(unary, 0, 1), mask.T), reverse=True)
    return betas


@jax.jit
def _log_partition(unary, transitions, initial, mask):
    return _forward(unary, transitions, initial, mask)[1]


@jax.jit
def _marginals(unary, transitions, initial, mask):
    alphas, log_z = _forward(unary, transitions, initial, mask)
    betas = _backward(unary, transitions, mask)
    ok = jnp.isfinite(log_z)
    shift = jnp.where(ok, log_z, 0.0)[None, :, None]
    p = jnp.exp(alphas + betas - shift)
    p = jnp.where(mask.T[:, :, None] & ok[None, :, None], p, 0.0)
    return jnp.swapaxes(p, 0, 1)


@jax.jit
def _viterbi(unary, transitions, initial, mask):
    b, _, s = unary.shape
    identity = jnp.broadcast_to(jnp.arange(s, dtype=jnp.int32), (b, s))

    def step(carry, xs):
        delta, started = carry
        u_t, m_t = xs
        scores = delta[:, :, None] + transitions
        new = jnp.where(started[:, None], jnp.max(scores, axis=1), initial) + u_t
        back = jnp.argmax(scores, axis=1).astype(jnp.int32)
        back = jnp.where((m_t & started)[:, None], back, identity)
        return (jnp.where(m_t[:, None], new, delta), started | m_t), back

    init = (jnp.zeros((b, s), unary.dtype), jnp.zeros((b,), bool))
    (delta, started), backs = lax.scan(step, init, (jnp.swapaxes(unary, 0, 1), mask.T))

    def trace(state, back_t):
        return jnp.take_along_axis(back_t, state[:, None], axis=1)[:, 0], state

    last = jnp.argmax(delta, axis=-1).astype(jnp.int32)
    _, path = lax.scan(trace, last, backs, reverse=True)
    return jnp.where(mask, path.T, -1), jnp.where(started, jnp.max(delta, axis=-1), 0.0)


def _unbatch(chain: _Chain, x, trailing=()):
    return x.reshape(chain.batch_shape + tuple(trailing)).astype(
        jnp.int32 if jnp.issubdtype(x.dtype, jnp.integer) else chain.out_dtype)


def chain_log_partition(unary, transitions, *, mask=None, initial=None):
    """Log partition function ``log Z = log Σ_paths exp(score)`` by the forward algorithm.

    Args:
      unary: floating ``[..., T, S]`` per-step state scores (finite or ``-inf``).
      transitions: floating ``[S, S]``; ``transitions[i, j]`` scores the move ``i → j``.
      mask: optional bool ``[..., T]``; ``False`` steps are removed (see the module docstring).
      initial: optional floating ``[S]`` start scores (default 0).

    Returns:
      ``[...]``. ``-inf`` when no path has a finite score (never NaN); its gradient is then zero.
      The gradient with respect to ``unary`` is :func:`chain_marginals` (finite, and exactly 0
      on ``-inf`` entries and skipped steps).
    """
    chain = _prepare(unary, transitions, mask, initial)
    return _unbatch(chain, _log_partition(*chain[:4]))


def chain_marginals(unary, transitions, *, mask=None, initial=None):
    """Per-step state marginals ``p(s_t = j)`` by the forward–backward algorithm.

    Args: as :func:`chain_log_partition`.

    Returns:
      ``[..., T, S]``; each valid step sums to 1. Skipped (padded) steps and sequences with
      ``log Z = -inf`` get zeros. Equal to ``∂ log Z / ∂ unary``.
    """
    chain = _prepare(unary, transitions, mask, initial)
    return _unbatch(chain, _marginals(*chain[:4]), chain.unary.shape[1:])


def chain_viterbi(unary, transitions, *, mask=None, initial=None):
    """Most likely state path by the Viterbi (max-product) algorithm.

    Args: as :func:`chain_log_partition`.

    Returns:
      ``(path [..., T] int32, score [...])``: the best path's states (``-1`` at skipped steps)
      and its score. Ties go to the lowest state index. When no path has a finite score the
      score is ``-inf`` and the path is an arbitrary one (not meaningful).
    """
    chain = _prepare(unary, transitions, mask, initial)
    path, score = _viterbi(*chain[:4])
    return _unbatch(chain, path, path.shape[1:]), _unbatch(chain, score)


def _labels(labels, chain: _Chain, mask, num, what):
    labels = check_array(labels, "labels", kind="integer", shape_hint="[..., T]")
    want = chain.batch_shape + chain.unary.shape[1:2]
    if tuple(labels.shape) != want:
        raise ValueError(f"labels must have shape unary.shape[:-1] = {want}; got "
                         f"{tuple(labels.shape)}")
    if is_concrete(labels) and (mask is None or is_concrete(mask)):
        values = np.asarray(labels)
        if mask is not None:
            values = values[np.asarray(mask)]
        if values.size and (values.min() < 0 or values.max() >= num):
            raise ValueError(f"labels at valid steps must lie in [0, {num}) ({what}); got values "
                             f"in [{values.min()}, {values.max()}]")
    return labels


def _path_score(unary, transitions, initial, mask, labels):
    """Score ``[B]`` of the labelled state paths ``labels [B, T]``."""
    b, _, s = unary.shape
    y = jnp.clip(labels, 0, s - 1)
    picked = jnp.take_along_axis(unary, y[..., None], axis=-1)[..., 0]

    def step(carry, xs):
        prev, started, score = carry
        y_t, u_t, m_t = xs
        add = jnp.where(started, transitions[prev, y_t], initial[y_t]) + u_t
        return (jnp.where(m_t, y_t, prev), started | m_t, score + jnp.where(m_t, add, 0.0)), None

    init = (jnp.zeros((b,), y.dtype), jnp.zeros((b,), bool), jnp.zeros((b,), unary.dtype))
    (_, _, score), _ = lax.scan(step, init, (y.T, picked.T, mask.T))
    return score


def _minus_log_z(score, log_z, bad):
    """``score − log Z``: ``-inf`` when ``log Z = -inf`` (no NaN), NaN where ``bad``."""
    out = jnp.where(log_z == -jnp.inf, -jnp.inf, score - log_z)
    return jnp.where(bad, jnp.nan, out)


@jax.jit
def _log_likelihood(unary, transitions, initial, mask, labels):
    bad = jnp.any(mask & ((labels < 0) | (labels >= unary.shape[-1])), axis=-1)
    score = _path_score(unary, transitions, initial, mask, labels)
    return _minus_log_z(score, _forward(unary, transitions, initial, mask)[1], bad)


@jax.jit
def _latent_log_likelihood(unary, transitions, initial, mask, labels, state_to_label):
    allowed = state_to_label == labels[..., None]  # [B, T, S]; no state for a bad label
    bad = jnp.any(mask & ~jnp.any(allowed, axis=-1), axis=-1)
    restricted = jnp.where(allowed, unary, -jnp.inf)
    score = _forward(restricted, transitions, initial, mask)[1]
    return _minus_log_z(score, _forward(unary, transitions, initial, mask)[1], bad)


@jax.jit
def _sequence_log_probs(unary, transitions, initial, mask, own):
    b, t, s = unary.shape
    num_labels = own.shape[0]
    restricted = jnp.where(own[None, :, None, :], unary[:, None], -jnp.inf)  # [B, L, T, S]
    log_z = _forward(restricted.reshape(b * num_labels, t, s), transitions, initial,
                     jnp.repeat(mask, num_labels, axis=0))[1]
    return log_softmax(log_z.reshape(b, num_labels), axis=-1)


def _state_labels(state_to_label, num_states):
    """Validate the concrete ``state_to_label [S]``; returns it as NumPy and ``L``."""
    if not is_concrete(state_to_label):
        raise TypeError("state_to_label must be concrete (a NumPy array or a sequence): it "
                        "fixes the model's structure; got a traced value")
    s2l = np.asarray(state_to_label)
    if s2l.ndim != 1 or s2l.shape[0] != num_states or not np.issubdtype(s2l.dtype, np.integer):
        raise ValueError(f"state_to_label must be integers [S] with S = unary.shape[-1] = "
                         f"{num_states}; got shape {s2l.shape}, dtype {s2l.dtype}")
    if s2l.min() < 0:
        raise ValueError(f"state_to_label must be >= 0; got minimum {s2l.min()}")
    num_labels = int(s2l.max()) + 1
    empty = np.setdiff1d(np.arange(num_labels), s2l)
    if empty.size:
        raise ValueError(f"state_to_label must give every label in [0, {num_labels}) at least one"
                         f" state; labels {empty.tolist()} have none")
    return s2l, num_labels


def chain_log_likelihood(unary, transitions, labels, *, mask=None, initial=None,
                         state_to_label=None):
    """Log-likelihood ``log p(labels | unary)`` of labelled sequences.

    Without ``state_to_label`` the labels are states and this is the labelled path's score
    minus ``log Z`` (the linear-chain CRF). With ``state_to_label`` the labels are per-step
    labels in ``[0, L)`` and this is the latent-dynamic CRF's ``log Σ_{s consistent} exp(score)
    − log Z``, where a state path is consistent when each step's state carries that step's
    label: computed as the log partition with the other states' unaries set to ``-inf``.

    Args:
      unary, transitions, mask, initial: as :func:`chain_log_partition`.
      labels: integer ``[..., T]``, in ``[0, S)`` (or ``[0, L)``) at valid steps; any value at
        skipped steps.
      state_to_label: optional integer ``[S]``, concrete (see :func:`chain_label_marginals`).

    Returns:
      ``[...]``, ``<= 0``: ``-inf`` for an impossible labelling (also when ``log Z = -inf``),
      NaN inside ``jit`` for a label out of range at a valid step. Its gradient with respect to
      ``unary`` is the (consistent-path) posterior minus :func:`chain_marginals`.
    """
    chain = _prepare(unary, transitions, mask, initial)
    s = chain.unary.shape[-1]
    if state_to_label is None:
        labels = _labels(labels, chain, mask, s, "states")
        out = _log_likelihood(*chain[:4], jnp.asarray(labels).reshape(chain.mask.shape))
    else:
        s2l, num_labels = _state_labels(state_to_label, s)
        labels = _labels(labels, chain, mask, num_labels, "labels of state_to_label")
        out = _latent_log_likelihood(*chain[:4], jnp.asarray(labels).reshape(chain.mask.shape),
                                     jnp.asarray(s2l))
    return _unbatch(chain, out)


def chain_label_marginals(unary, transitions, state_to_label, *, mask=None, initial=None):
    """Per-step label marginals of the latent-dynamic CRF: ``p(y_t = l) = Σ_{s: label(s) = l}
    p(s_t = s)``.

    Args:
      unary, transitions, mask, initial: as :func:`chain_log_partition`.
      state_to_label: integer ``[S]`` mapping states to labels ``0 … L-1``; every label needs
        at least one state. It fixes the model's structure, so it must be concrete (NumPy or a
        sequence; a closed-over constant inside ``jit``), never a traced argument.

    Returns:
      ``[..., T, L]``; valid steps sum to 1, skipped steps are zero. Its argmax over ``L`` is
      the latent-dynamic CRF's per-step decision (Morency et al., 2007).
    """
    marginals = chain_marginals(unary, transitions, mask=mask, initial=initial)
    s2l, num_labels = _state_labels(state_to_label, marginals.shape[-1])
    onehot = jnp.asarray(s2l[:, None] == np.arange(num_labels), marginals.dtype)
    return jnp.einsum("...s,sl->...l", marginals, onehot, precision=_HIGHEST)


def chain_sequence_log_probs(unary, transitions, state_to_label, *, mask=None, initial=None):
    """Sequence-label log-probabilities of the hidden CRF (Quattoni et al., 2007).

    One label per sequence; label ``y`` owns the states ``{s: state_to_label[s] = y}`` and a
    sequence of label ``y`` follows a path through those states only, so
    ``log p(y | x) = log Z_y − log Σ_y' Z_y'`` with ``Z_y`` the partition function restricted to
    ``y``'s states (transitions between different labels' states play no part). The
    denominator sums over label-consistent paths only: a path mixing labels' states is not a
    configuration of this model, so the probabilities sum to one over labels.

    Args: as :func:`chain_label_marginals`.

    Returns:
      ``[..., L]`` log-probabilities. A label none of whose paths is feasible gets ``-inf``; when
      no label has a feasible path, all are ``-inf``. An empty sequence gives ``-log L`` for
      every label.
    """
    chain = _prepare(unary, transitions, mask, initial)
    s2l, num_labels = _state_labels(state_to_label, chain.unary.shape[-1])
    own = jnp.asarray(s2l[None, :] == np.arange(num_labels)[:, None])  # [L, S]
    return _unbatch(chain, _sequence_log_probs(*chain[:4], own), (num_labels,))
