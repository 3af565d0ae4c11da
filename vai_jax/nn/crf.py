"""CRF layers with learnable potentials: a linear-chain CRF (:class:`ChainCRF`), a conditional
neural field over video frames (:class:`ConditionalNeuralField`), a fully connected CRF over
pixels (:class:`DenseCRF`) and a segmentation network topped by one (:class:`CRFAsRNN`). The
inference itself lives in :mod:`vai_jax.ops.crf` and
:mod:`vai_jax.ops.dense_crf`; these modules hold the parameters.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from vai_jax._validation import check_array
from vai_jax.ops import crf as chain_ops
from vai_jax.ops.dense_crf import dense_crf


class ChainCRF(nn.Module):
    """A linear-chain CRF over ``num_states`` states with learnable potentials.

    Parameters: ``transitions [S, S]`` (``transitions[i, j]`` scores the move ``i → j``) and,
    when ``use_initial``, ``initial [S]`` start scores; both start at zero, so an untrained CRF
    treats the steps independently.

    Attributes:
      num_states: ``S``.
      state_to_label: optional ``[S]`` map from hidden states to labels (a Python sequence):
        with it :meth:`log_likelihood` takes per-step labels (latent-dynamic CRF) and
        :meth:`label_marginals` / :meth:`sequence_log_probs` are available (see
        :mod:`vai_jax.ops.crf`).
      use_initial: learn ``initial``.

    Every method takes ``unary [..., T, S]`` and an optional bool ``mask [..., T]`` (ragged
    lengths); ``__call__`` returns the state marginals. Call the others with
    ``model.apply(variables, ..., method="log_likelihood")``.
    """

    num_states: int
    state_to_label: Sequence[int] | None = None
    use_initial: bool = True
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        if int(self.num_states) < 1:
            raise ValueError(f"num_states must be >= 1; got {self.num_states}")
        s = int(self.num_states)
        self.transitions = self.param("transitions", nn.initializers.zeros, (s, s),
                                      self.param_dtype)
        self.initial = (self.param("initial", nn.initializers.zeros, (s,), self.param_dtype)
                        if self.use_initial else None)

    def _hidden(self, what):
        if self.state_to_label is None:
            raise ValueError(f"{what} needs state_to_label; this ChainCRF has none")
        return np.asarray(self.state_to_label)

    def __call__(self, unary, *, mask=None):
        """State marginals ``[..., T, S]`` (:func:`~vai_jax.ops.crf.chain_marginals`)."""
        return self.marginals(unary, mask=mask)

    def marginals(self, unary, *, mask=None):
        return chain_ops.chain_marginals(unary, self.transitions, mask=mask, initial=self.initial)

    def log_partition(self, unary, *, mask=None):
        """``log Z [...]``."""
        return chain_ops.chain_log_partition(unary, self.transitions, mask=mask,
                                             initial=self.initial)

    def log_likelihood(self, unary, labels, *, mask=None):
        """``log p(labels | unary) [...]``; ``labels [..., T]`` are states, or labels when
        ``state_to_label`` is set. The training loss is its negative mean."""
        s2l = None if self.state_to_label is None else np.asarray(self.state_to_label)
        return chain_ops.chain_log_likelihood(unary, self.transitions, labels, mask=mask,
                                              initial=self.initial, state_to_label=s2l)

    def decode(self, unary, *, mask=None):
        """Viterbi ``(state path [..., T] int32 with -1 at padded steps, score [...])``."""
        return chain_ops.chain_viterbi(unary, self.transitions, mask=mask, initial=self.initial)

    def label_marginals(self, unary, *, mask=None):
        """Latent-dynamic CRF per-step label marginals ``[..., T, L]``."""
        return chain_ops.chain_label_marginals(unary, self.transitions,
                                               self._hidden("label_marginals"), mask=mask,
                                               initial=self.initial)

    def sequence_log_probs(self, unary, *, mask=None):
        """Hidden CRF per-sequence label log-probabilities ``[..., L]``."""
        return chain_ops.chain_sequence_log_probs(unary, self.transitions,
                                                  self._hidden("sequence_log_probs"),
                                                  mask=mask, initial=self.initial)


class ConditionalNeuralField(nn.Module):
    """A conditional neural field (Peng, Bo & Xu, 2009) over video frames: a per-frame network
    gives each frame's state scores, a :class:`ChainCRF` couples neighbouring frames, and the
    whole is trained end to end by maximum likelihood (the CRF's gradient, observed minus
    expected state counts, flows into the network).

    Attributes:
      backbone: any module called as ``backbone(x [N, H, W, C], train=...)`` and returning
        ``(logits, features)`` like the vai_jax backbones; frames ``[B, T, H, W, C]`` are folded
        into ``N = B·T`` images (with BatchNorm, padded frames join the batch statistics).
      num_states: ``S``; a ``Dense`` layer named ``unary`` maps frame features to ``S`` scores.
      in_feature: ``None`` to use the backbone's ``logits [N, D]``; otherwise the name of a
        ``features`` map ``[N, h, w, D]``, averaged over ``h, w`` (or used as is if ``[N, D]``).
      state_to_label, use_initial: as :class:`ChainCRF` (child named ``crf``).

    ``__call__(frames, *, train)`` returns the unaries ``[B, T, S]``; :meth:`log_likelihood`,
    :meth:`decode` and :meth:`label_marginals` run the CRF on them.
    """

    backbone: nn.Module
    num_states: int
    in_feature: str | None = None
    state_to_label: Sequence[int] | None = None
    use_initial: bool = True
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.unary = nn.Dense(int(self.num_states), dtype=self.dtype,
                              param_dtype=self.param_dtype)
        self.crf = ChainCRF(self.num_states, state_to_label=self.state_to_label,
                            use_initial=self.use_initial, param_dtype=self.param_dtype)

    def __call__(self, frames, *, train: bool):
        frames = check_array(frames, "frames", ndim=5, kind="floating",
                             shape_hint="[B, T, H, W, C]")
        b, t = frames.shape[:2]
        logits, features = self.backbone(frames.reshape(b * t, *frames.shape[2:]), train=train)
        if self.in_feature is None:
            if logits is None:
                raise ValueError("in_feature=None uses the backbone's logits, but the backbone "
                                 "returned logits=None; name a feature map in in_feature")
            x = logits
        else:
            if self.in_feature not in features:
                raise ValueError(f"in_feature must name one of the backbone's features "
                                 f"{sorted(features)}; got {self.in_feature!r}")
            x = features[self.in_feature]
            x = jnp.mean(x, axis=tuple(range(1, x.ndim - 1))) if x.ndim > 2 else x
        unary = self.unary(x).reshape(b, t, -1)
        if self.is_initializing():  # create the CRF's parameters along with the network's
            self.crf.log_partition(unary)
        return unary

    def log_likelihood(self, frames, labels, *, mask=None, train: bool):
        """``log p(labels | frames) [B]`` for ``labels [B, T]`` (states, or labels with
        ``state_to_label``); minimise ``-mean`` to train."""
        return self.crf.log_likelihood(self(frames, train=train), labels, mask=mask)

    def decode(self, frames, *, mask=None, train: bool):
        """Viterbi state path ``[B, T]`` and score ``[B]``."""
        return self.crf.decode(self(frames, train=train), mask=mask)

    def label_marginals(self, frames, *, mask=None, train: bool):
        """Per-frame label marginals ``[B, T, L]`` (needs ``state_to_label``)."""
        return self.crf.label_marginals(self(frames, train=train), mask=mask)


class DenseCRF(nn.Module):
    """Fully connected CRF refinement of segmentation logits, trainable as in CRF-as-RNN
    (Zheng et al., 2015): :func:`vai_jax.ops.dense_crf.dense_crf` with learnable kernel weights
    (``spatial_weight``, ``bilateral_weight``, scalars) and, when ``learn_compatibility``, a
    learnable ``compatibility [C, C]`` initialised to Potts ``1 − eye(C)``.

    ``__call__(unary_logits [B, H, W, C], image [B, H, W, K] in 0 … 255, *, train)`` returns
    refined logits of the same shape; the sigmas, ``iterations`` and ``method`` are fixed.
    """

    iterations: int = 5
    spatial_sigma: float = 3.0
    bilateral_sigmas: tuple[float, float] = (30.0, 13.0)
    init_weights: tuple[float, float] = (3.0, 5.0)
    learn_compatibility: bool = True
    method: str = "exact"
    grid_cells_per_sigma: float = 1.5
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, unary_logits, image, *, train: bool):
        del train
        unary_logits = check_array(unary_logits, "unary_logits", ndim=4, kind="floating",
                                   shape_hint="[B, H, W, C]")
        c = unary_logits.shape[-1]
        w_s = self.param("spatial_weight", nn.initializers.constant(self.init_weights[0]), (),
                         self.param_dtype)
        w_b = self.param("bilateral_weight", nn.initializers.constant(self.init_weights[1]), (),
                         self.param_dtype)
        compat = None
        if self.learn_compatibility:
            compat = self.param("compatibility",
                                lambda key, shape, dtype: 1.0 - jnp.eye(shape[0], dtype=dtype),
                                (c, c), self.param_dtype)
        return dense_crf(unary_logits, image, iterations=self.iterations,
                         spatial_sigma=self.spatial_sigma, bilateral_sigmas=self.bilateral_sigmas,
                         weights=(w_s, w_b), compatibility=compat, method=self.method,
                         grid_cells_per_sigma=self.grid_cells_per_sigma)


class CRFAsRNN(nn.Module):
    """A segmentation network followed by a :class:`DenseCRF`, trained end to end (CRF-as-RNN,
    Zheng et al., 2015: the network's logits are the CRF's unaries and the mean-field
    iterations are unrolled layers, so the loss on the refined logits trains both).

    Attributes:
      network: any module called as ``network(x, train=...)`` returning ``{"out": logits
        [B, H, W, C]}`` at the input's resolution (the segmentation networks of
        :mod:`vai_jax.segmentation.models`); its other outputs (``"aux"``) are passed through.
      crf: the :class:`DenseCRF` (its sigmas, iterations, method and initial weights).
      image_mean, image_std: the CRF's image in 0 … 255 is ``x · image_std + image_mean``, the
        network input mapped back to intensities (scalars, or per-channel sequences): e.g.
        ``127.5`` and ``63.75`` for inputs normalised as ``(u8 / 255 − 0.5) / 0.25``.

    ``__call__(x [B, H, W, K], *, train)`` → ``{"out": refined logits, "unary": the network's
    logits, …}``. Parameters: ``network/…`` and ``crf/…``, so a trained network's variables
    graft under ``network``.
    """

    network: nn.Module
    crf: DenseCRF
    image_mean: float | Sequence[float] = 0.0
    image_std: float | Sequence[float] = 1.0

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, K]")
        out = self.network(x, train=train)
        if not isinstance(out, Mapping) or "out" not in out:
            raise TypeError(f"network must return a dict with 'out' (logits [B, H, W, C]); got "
                            f"{type(out).__name__}")
        out = dict(out)
        unary = out["out"]
        mean = jnp.asarray(self.image_mean, jnp.float32)
        std = jnp.asarray(self.image_std, jnp.float32)
        image = jnp.clip(x.astype(jnp.float32) * std + mean, 0.0, 255.0)
        out["unary"] = unary
        out["out"] = self.crf(unary, image, train=train)
        return out
