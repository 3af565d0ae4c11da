"""Linear-chain CRF ops against brute-force enumeration of all S**T state paths in float64."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from vai_jax.ops import crf

NEG = -np.inf


def _path_scores(unary, transitions, mask=None, initial=None):
    """{full-length path (with -1 at masked steps): score} for one sequence ``unary [T, S]``."""
    unary = np.asarray(unary, np.float64)
    transitions = np.asarray(transitions, np.float64)
    t_len, s = unary.shape
    steps = [t for t in range(t_len) if mask is None or mask[t]]
    init = np.zeros(s) if initial is None else np.asarray(initial, np.float64)
    out = {}
    for states in itertools.product(range(s), repeat=len(steps)):
        score = 0.0
        for k, (t, state) in enumerate(zip(steps, states)):
            score += unary[t, state]
            score += init[state] if k == 0 else transitions[states[k - 1], state]
        path = [-1] * t_len
        for t, state in zip(steps, states):
            path[t] = state
        out[tuple(path)] = score
    return out


def _logsumexp(values):
    values = np.asarray(list(values), np.float64)
    if values.size == 0 or np.all(values == NEG):
        return NEG
    m = values.max()
    return m + np.log(np.sum(np.exp(values - m)))


def _reference(unary, transitions, mask=None, initial=None):
    """log Z, marginals [T, S], best path and score for one sequence."""
    scores = _path_scores(unary, transitions, mask, initial)
    log_z = _logsumexp(scores.values())
    marg = np.zeros(np.shape(unary))
    if np.isfinite(log_z):
        for path, score in scores.items():
            for t, state in enumerate(path):
                if state >= 0:
                    marg[t, state] += np.exp(score - log_z)
    best = max(scores, key=scores.get)
    return log_z, marg, np.array(best), scores[best]


def _batched(fn, unary, transitions, mask=None, initial=None):
    unary = np.asarray(unary)
    flat = unary.reshape(-1, *unary.shape[-2:])
    flat_mask = None if mask is None else np.asarray(mask).reshape(-1, unary.shape[-2])
    return [fn(flat[i], transitions, None if mask is None else flat_mask[i], initial)
            for i in range(flat.shape[0])]


def _random(shape, seed, scale=1.0):
    return np.random.default_rng(seed).normal(0, scale, shape).astype(np.float32)


def _assert_all(batch_shape, unary, transitions, mask=None, initial=None, atol=1e-5):
    refs = _batched(_reference, unary, transitions, mask, initial)
    t_len, s = np.shape(unary)[-2:]
    log_z = crf.chain_log_partition(unary, transitions, mask=mask, initial=initial)
    marg = crf.chain_marginals(unary, transitions, mask=mask, initial=initial)
    path, score = crf.chain_viterbi(unary, transitions, mask=mask, initial=initial)
    assert log_z.shape == batch_shape and marg.shape == batch_shape + (t_len, s)
    assert path.shape == batch_shape + (t_len,) and path.dtype == jnp.int32
    np.testing.assert_allclose(log_z.reshape(-1), [r[0] for r in refs], rtol=1e-5, atol=atol)
    np.testing.assert_allclose(marg.reshape(-1, t_len, s), [r[1] for r in refs], atol=atol)
    np.testing.assert_array_equal(path.reshape(-1, t_len), [r[2] for r in refs])
    np.testing.assert_allclose(score.reshape(-1), [r[3] for r in refs], rtol=1e-5, atol=atol)
    return refs


@pytest.mark.parametrize("batch_shape,t_len,s,with_initial", [
    ((3,), 4, 3, False), ((2, 2), 3, 2, True), ((2,), 1, 3, True), ((1,), 5, 1, False)])
def test_matches_brute_force(batch_shape, t_len, s, with_initial):
    unary = _random(batch_shape + (t_len, s), 0, 2.0)
    transitions = _random((s, s), 1)
    initial = _random((s,), 2) if with_initial else None
    _assert_all(batch_shape, unary, transitions, initial=initial)


def test_ragged_and_gapped_masks():
    unary = _random((5, 4, 3), 3, 2.0)
    transitions, initial = _random((3, 3), 4), _random((3,), 5)
    lengths = np.array([4, 2, 0, 1, 3])
    mask = np.arange(4) < lengths[:, None]
    _assert_all((5,), unary, transitions, mask, initial)
    path, score = crf.chain_viterbi(unary, transitions, mask=mask)
    assert np.all(np.asarray(path)[~mask] == -1) and float(score[2]) == 0.0
    assert float(crf.chain_log_partition(unary, transitions, mask=mask)[2]) == 0.0
    # A False step inside a sequence is removed: its neighbours are joined by one transition.
    gapped = np.array([[True, False, True, True], [False, True, False, True]] * 2 + [[1, 0, 0, 1]],
                      bool)
    _assert_all((5,), unary, transitions, gapped, initial)


def test_forbidden_transitions():
    unary = _random((3, 5, 3), 6, 1.5)
    transitions = _random((3, 3), 7)
    transitions[0, 2] = transitions[2, 2] = transitions[1, 0] = NEG  # forbidden moves
    initial = np.array([0.0, NEG, 0.5], np.float32)  # cannot start in state 1
    mask = np.arange(5) < np.array([5, 3, 1])[:, None]
    _assert_all((3,), unary, transitions, mask, initial)
    g = jax.grad(lambda u, tr: crf.chain_log_partition(u, tr, mask=mask, initial=initial).sum(),
                 argnums=(0, 1))(unary, transitions)
    assert all(np.all(np.isfinite(x)) for x in g)
    assert np.all(np.asarray(g[1])[np.isinf(transitions)] == 0)


def test_infeasible_chain_gives_minus_inf_not_nan():
    unary = _random((2, 4, 3), 8)
    unary[0, 2] = NEG  # every state of step 2 forbidden in sequence 0
    transitions = _random((3, 3), 9)
    log_z = crf.chain_log_partition(unary, transitions)
    assert log_z[0] == -np.inf and np.isfinite(log_z[1])
    marg = crf.chain_marginals(unary, transitions)
    np.testing.assert_array_equal(marg[0], 0.0)
    grad = jax.grad(lambda u: crf.chain_log_partition(u, transitions).sum())(unary)
    assert np.all(np.isfinite(grad)) and np.all(grad[0] == 0)
    np.testing.assert_allclose(grad[1], marg[1], atol=1e-6)
    ll = crf.chain_log_likelihood(unary, transitions, np.zeros((2, 4), np.int32))
    assert ll[0] == -np.inf and np.isfinite(ll[1])
    assert np.all(np.isfinite(jax.grad(
        lambda u: crf.chain_log_likelihood(u, transitions, np.zeros((2, 4), int))[1])(unary)))
    # all moves forbidden: only length-1 sequences are feasible
    closed = np.full((3, 3), NEG, np.float32)
    lz = crf.chain_log_partition(unary[1], closed, mask=np.array([True, False, False, False]))
    np.testing.assert_allclose(lz, _reference(unary[1, :1], closed)[0], rtol=1e-6)
    assert crf.chain_log_partition(unary[1], closed) == -np.inf


def test_log_likelihood_matches_brute_force():
    unary = _random((4, 4, 3), 10, 1.5)
    transitions = _random((3, 3), 11)
    transitions[2, 0] = NEG
    initial = _random((3,), 12)
    mask = np.arange(4) < np.array([4, 3, 2, 4])[:, None]
    labels = np.array([[0, 1, 2, 2], [2, 2, 1, -1], [1, 0, 7, 7], [1, 2, 0, 0]])  # last: -inf
    got = crf.chain_log_likelihood(unary, transitions, labels, mask=mask, initial=initial)
    for i in range(4):
        scores = _path_scores(unary[i], transitions, mask[i], initial)
        key = tuple(np.where(mask[i], labels[i], -1))
        np.testing.assert_allclose(got[i], scores[key] - _logsumexp(scores.values()), rtol=1e-5)
    assert got[3] == -np.inf
    # the likelihoods of all labellings of a sequence sum to one
    every = np.array(list(itertools.product(range(3), repeat=4)))
    ll = crf.chain_log_likelihood(np.broadcast_to(unary[0], (81, 4, 3)), transitions, every,
                                  initial=initial)
    np.testing.assert_allclose(np.exp(np.asarray(ll, np.float64)).sum(), 1.0, rtol=1e-5)


def test_log_likelihood_gradient_is_empirical_minus_expected():
    unary, transitions = _random((2, 3, 3), 13), _random((3, 3), 14)
    labels = np.array([[0, 2, 1], [1, 1, 0]])
    g = jax.grad(lambda u: crf.chain_log_likelihood(u, transitions, labels).sum())(unary)
    onehot = np.eye(3)[labels]
    np.testing.assert_allclose(g, onehot - crf.chain_marginals(unary, transitions), atol=1e-6)


def test_bad_label_ranges():
    unary, transitions = _random((2, 3, 3), 15), _random((3, 3), 16)
    with pytest.raises(ValueError, match=r"labels at valid steps must lie in \[0, 3\)"):
        crf.chain_log_likelihood(unary, transitions, np.array([[0, 1, 3], [0, 0, 0]]))
    mask = np.array([[True, True, False], [True, True, True]])
    ok = crf.chain_log_likelihood(unary, transitions, np.array([[0, 1, 9], [0, 0, 0]]), mask=mask)
    assert np.all(np.isfinite(ok))  # padded labels are not checked
    traced = jax.jit(crf.chain_log_likelihood)(unary, transitions, np.array([[0, 1, 3], [0, 0, 0]]))
    assert np.isnan(traced[0]) and np.isfinite(traced[1])
    with pytest.raises(ValueError, match=r"labels must have shape unary.shape\[:-1\]"):
        crf.chain_log_likelihood(unary, transitions, np.zeros((2, 4), np.int32))
    with pytest.raises(TypeError, match="labels must have an integer dtype"):
        crf.chain_log_likelihood(unary, transitions, np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("dtype,scale,rtol", [(jnp.bfloat16, 3.0, 2e-2), (jnp.float16, 20.0, 2e-3)])
def test_half_precision_computes_in_float32(dtype, scale, rtol):
    # scale 20: exp(unary) overflows float16 (max 65504) unless the recursion is upcast
    unary = jnp.asarray(_random((2, 4, 3), 17, scale), dtype)
    transitions = jnp.asarray(_random((3, 3), 18), dtype)
    mask = np.array([[True] * 4, [True, True, False, False]])
    log_z = crf.chain_log_partition(unary, transitions, mask=mask)
    marg = crf.chain_marginals(unary, transitions, mask=mask)
    assert log_z.dtype == dtype and marg.dtype == dtype
    u64, t64 = np.asarray(unary, np.float64), np.asarray(transitions, np.float64)
    refs = _batched(_reference, u64, t64, mask)
    np.testing.assert_allclose(np.asarray(log_z, np.float64), [r[0] for r in refs], rtol=rtol)
    np.testing.assert_allclose(np.asarray(marg, np.float64), [r[1] for r in refs], atol=1e-2)
    path, _ = crf.chain_viterbi(unary, transitions, mask=mask)
    np.testing.assert_array_equal(path, [r[2] for r in refs])


def _latent_reference(unary, transitions, s2l, labels, mask):
    scores = _path_scores(unary, transitions, mask)
    log_z = _logsumexp(scores.values())
    consistent = [v for p, v in scores.items()
                  if all(st < 0 or s2l[st] == y for st, y in zip(p, labels))]
    num_labels = max(s2l) + 1
    label_marg = np.zeros((len(labels), num_labels))
    for p, v in scores.items():
        for t, st in enumerate(p):
            if st >= 0:
                label_marg[t, s2l[st]] += np.exp(v - log_z)
    per_label = [_logsumexp(v for p, v in scores.items() if all(st < 0 or s2l[st] == y
                                                                  for st in p))
                 for y in range(num_labels)]
    hidden = np.array(per_label) - _logsumexp(per_label)
    return _logsumexp(consistent) - log_z, label_marg, hidden


def test_latent_dynamic_and_hidden_crf_match_brute_force():
    s2l = [0, 0, 1, 2, 1]  # 5 hidden states for 3 labels
    unary = _random((3, 4, 5), 19, 1.5)
    transitions = _random((5, 5), 20)
    transitions[1, 3] = NEG
    mask = np.arange(4) < np.array([4, 3, 1])[:, None]
    labels = np.array([[0, 0, 1, 2], [1, 2, 2, 0], [2, 0, 0, 0]])
    ll = crf.chain_log_likelihood(unary, transitions, labels, mask=mask, state_to_label=s2l)
    lm = crf.chain_label_marginals(unary, transitions, s2l, mask=mask)
    hidden = crf.chain_sequence_log_probs(unary, transitions, s2l, mask=mask)
    assert lm.shape == (3, 4, 3) and hidden.shape == (3, 3)
    for i in range(3):
        ref_ll, ref_lm, ref_hidden = _latent_reference(unary[i], transitions, s2l, labels[i],
                                                       mask[i])
        np.testing.assert_allclose(ll[i], ref_ll, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(lm[i], ref_lm, atol=1e-5)
        np.testing.assert_allclose(hidden[i], ref_hidden, rtol=1e-5, atol=1e-5)
    # one state per label: the latent-dynamic CRF is the plain CRF
    u3, t3 = unary[..., :3], transitions[:3, :3]
    np.testing.assert_allclose(
        crf.chain_log_likelihood(u3, t3, labels, mask=mask, state_to_label=[2, 0, 1]),
        crf.chain_log_likelihood(u3, t3, np.argsort([2, 0, 1])[labels], mask=mask), rtol=1e-5)


def test_hidden_crf_infeasible_label():
    s2l = [0, 1, 1]
    unary = _random((2, 3, 3), 21)
    unary[0, 1, 0] = NEG  # label 0 (state 0 only) infeasible in sequence 0
    logp = crf.chain_sequence_log_probs(unary, _random((3, 3), 22), s2l)
    assert logp[0, 0] == -np.inf
    np.testing.assert_allclose(np.exp(logp).sum(-1), 1.0, rtol=1e-5)
    empty = crf.chain_sequence_log_probs(unary, _random((3, 3), 22), s2l,
                                         mask=np.zeros((2, 3), bool))
    np.testing.assert_allclose(empty, np.log(0.5), rtol=1e-6)


def test_gradient_of_log_partition_is_marginals():
    unary, transitions, initial = _random((3, 4, 3), 23, 2.0), _random((3, 3), 24), None
    transitions[1, 1] = NEG
    mask = np.arange(4) < np.array([4, 2, 3])[:, None]
    g = jax.grad(lambda u: crf.chain_log_partition(u, transitions, mask=mask).sum())(unary)
    np.testing.assert_allclose(g, crf.chain_marginals(unary, transitions, mask=mask,
                                                      initial=initial), atol=1e-6)
    assert np.all(np.asarray(g)[~mask] == 0)


def test_check_grads():
    unary = jnp.asarray(_random((2, 3, 3), 25))
    transitions, initial = jnp.asarray(_random((3, 3), 26)), jnp.asarray(_random((3,), 27))
    mask = np.array([[True, True, True], [True, True, False]])
    check_grads(jax.jit(lambda u, tr, i: crf.chain_log_partition(u, tr, mask=mask, initial=i)),
                (unary, transitions, initial), order=1, modes=("rev",), atol=1e-2, rtol=1e-2)


def test_jit_and_vmap_agree():
    unary, transitions = _random((3, 4, 3), 28), _random((3, 3), 29)
    mask = np.arange(4) < np.array([4, 1, 3])[:, None]
    labels = np.array([[0, 1, 2, 0], [1, 0, 0, 0], [2, 2, 1, 0]])
    fns = {
        "log_z": lambda u, m, y: crf.chain_log_partition(u, transitions, mask=m),
        "marg": lambda u, m, y: crf.chain_marginals(u, transitions, mask=m),
        "viterbi": lambda u, m, y: crf.chain_viterbi(u, transitions, mask=m),
        "ll": lambda u, m, y: crf.chain_log_likelihood(u, transitions, y, mask=m),
        "ldcrf": lambda u, m, y: crf.chain_log_likelihood(u, transitions, y % 2, mask=m,
                                                          state_to_label=[0, 1, 1]),
    }
    for name, fn in fns.items():
        eager = fn(unary, mask, labels)
        for other in (jax.jit(fn)(unary, mask, labels), jax.vmap(fn)(unary, mask, labels)):
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6,
                                                                 err_msg=name), eager, other)


def test_bad_inputs_name_the_argument():
    unary, transitions = _random((2, 3, 4), 30), _random((4, 4), 31)
    cases = [
        ((unary[0, 0], transitions), {}, r"unary must have rank >= 2"),
        ((unary, transitions[:3, :3]), {}, r"transitions must be \[S, S\] with S = .* = 4"),
        ((unary, transitions[:3]), {}, r"transitions must be square"),
        ((unary, transitions[0]), {}, r"transitions must have rank 2"),
        ((unary, transitions), {"mask": np.ones((2, 4), bool)},
         r"mask must have shape unary.shape\[:-1\] = \(2, 3\)"),
        ((unary, transitions), {"initial": np.zeros(3, np.float32)}, r"initial must be \[S\]"),
        ((unary[:, :0], transitions), {}, r"T >= 1"),
    ]
    for args, kwargs, match in cases:
        for fn in (crf.chain_log_partition, crf.chain_marginals, crf.chain_viterbi):
            with pytest.raises(ValueError, match=match):
                fn(*args, **kwargs)
    with pytest.raises(TypeError, match="mask must have bool"):
        crf.chain_log_partition(unary, transitions, mask=np.ones((2, 3), np.int32))
    with pytest.raises(TypeError, match="unary must have a floating dtype"):
        crf.chain_log_partition(np.ones((2, 3, 4), np.int32), transitions)
    for s2l, match in [([0, 1, 1], r"state_to_label must be integers \[S\] with S = .* = 4"),
                       ([0, 2, 2, 0], r"labels \[1\] have none"),
                       ([0, -1, 1, 1], r"state_to_label must be >= 0")]:
        with pytest.raises(ValueError, match=match):
            crf.chain_label_marginals(unary, transitions, s2l)
    with pytest.raises(TypeError, match="state_to_label must be concrete"):
        jax.jit(crf.chain_sequence_log_probs)(unary, transitions, np.array([0, 1, 0, 1]))
