"""Numerics against float64 NumPy/SciPy references and closed-form gradients."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized
from jax.test_util import check_grads
from scipy import stats

from vai_jax import ops


def _np_logsumexp(x, axis=-1):
    # A different algorithm from the library's max-shift: pairwise logaddexp reduction.
    return np.logaddexp.reduce(np.asarray(x, np.float64), axis=axis)


def _np_softmax(x):
    """Softmax over the last axis in float64, as exp(x - logsumexp(x))."""
    x = np.asarray(x, np.float64)
    return np.exp(x - _np_logsumexp(x)[..., None])


def _rand(shape, scale=1.0, seed=0):
    return np.random.default_rng(seed).uniform(-scale, scale, shape).astype(np.float32)


class LogSumExpTest(parameterized.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(1.0, 50.0, 1e4)
    def test_value_matches_float64(self, scale):
        x = _rand((4, 7), scale)
        got = self.variant(ops.logsumexp)(x)
        np.testing.assert_allclose(got, _np_logsumexp(x), rtol=1e-6, atol=1e-5 * scale)

    @chex.variants(with_jit=True, without_jit=True)
    def test_gradient_is_softmax(self):
        x = _rand((3, 5), 1e4, seed=1)
        g = self.variant(jax.grad(lambda v: ops.logsumexp(v).sum()))(x)
        np.testing.assert_allclose(g, _np_softmax(x), atol=1e-6)
        assert np.all(np.isfinite(g))

    def test_check_grads_second_order(self):
        x = jnp.asarray(_rand((2, 4), 3.0, seed=2))
        check_grads(jax.jit(functools.partial(ops.logsumexp, axis=-1)), (x,), order=2,
                    modes=("fwd", "rev"), atol=2e-2, rtol=2e-2)

    @chex.variants(with_jit=True, without_jit=True)
    def test_all_neg_inf_slice(self):
        x = jnp.array([[-jnp.inf, -jnp.inf, -jnp.inf], [0.0, 1.0, -jnp.inf]])
        val = self.variant(ops.logsumexp)(x)
        assert val[0] == -jnp.inf
        np.testing.assert_allclose(val[1], np.log(1 + np.e), rtol=1e-6)
        g = self.variant(jax.grad(lambda v: ops.logsumexp(v)[1] + 0.0 * ops.logsumexp(v)[0]))(x)
        assert np.all(np.isfinite(g))
        np.testing.assert_array_equal(g[0], 0.0)
        np.testing.assert_allclose(g[1], [1 / (1 + np.e), np.e / (1 + np.e), 0.0], rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_where_excludes_with_zero_gradient(self):
        x = _rand((2, 6), 5.0, seed=3)
        mask = np.array([[1, 0, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0]], bool)
        val = self.variant(functools.partial(ops.logsumexp, where=mask))(x)
        np.testing.assert_allclose(val[0], _np_logsumexp(x[0][mask[0]]), rtol=1e-6)
        assert val[1] == -jnp.inf
        g = self.variant(jax.grad(lambda v: jnp.where(jnp.isfinite(s := ops.logsumexp(v, where=mask)), s, 0).sum()))(x)
        assert np.all(np.isfinite(g))
        np.testing.assert_array_equal(np.asarray(g)[~mask], 0.0)
        np.testing.assert_allclose(np.asarray(g)[0][mask[0]], _np_softmax(x[0][mask[0]]), atol=1e-6)

    def test_keepdims_and_tuple_axis(self):
        x = _rand((2, 3, 4), 2.0, seed=4)
        got = ops.logsumexp(x, axis=(1, 2), keepdims=True)
        assert got.shape == (2, 1, 1)
        np.testing.assert_allclose(got[:, 0, 0], _np_logsumexp(x.reshape(2, -1)), rtol=1e-6)

    @parameterized.parameters(jnp.bfloat16, jnp.float16)
    def test_half_precision_computed_in_float32(self, dtype):
        x = jnp.asarray(_rand((3, 8), 1e3, seed=5)).astype(dtype)
        got = ops.logsumexp(x)
        assert got.dtype == dtype
        ref = _np_logsumexp(np.asarray(x.astype(jnp.float32)))
        np.testing.assert_allclose(np.asarray(got, np.float32), ref, rtol=1e-2)
        assert np.all(np.isfinite(np.asarray(got, np.float32)))

    def test_bad_input(self):
        with self.assertRaisesRegex(TypeError, "x must have a floating dtype"):
            ops.logsumexp(jnp.arange(4))
        with self.assertRaisesRegex(ValueError, "axis=3 is out of range"):
            ops.logsumexp(jnp.zeros((2, 2)), axis=3)
        with self.assertRaisesRegex(TypeError, "where must be a boolean"):
            ops.logsumexp(jnp.zeros((2, 2)), where=jnp.ones((2, 2)))
        with self.assertRaisesRegex(ValueError, "where must broadcast"):
            ops.logsumexp(jnp.zeros((2, 2)), where=jnp.ones((3,), bool))
        with self.assertRaisesRegex(ValueError, r"axis must name each axis once; got \(1, -1\)"):
            ops.logsumexp(jnp.zeros((2, 2)), axis=(1, -1))
        with self.assertRaisesRegex(TypeError, "axis must be an int; got float 1.0"):
            ops.softmax(jnp.zeros((2, 2)), axis=1.0)
        with self.assertRaisesRegex(TypeError, "axis must be an int; got str"):
            ops.log_softmax(jnp.zeros((2, 2)), axis=(0, "1"))


class SoftmaxTest(parameterized.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(1.0, 1e4)
    def test_softmax_and_log_softmax_values(self, scale):
        x = _rand((5, 9), scale, seed=6)
        np.testing.assert_allclose(self.variant(ops.softmax)(x), _np_softmax(x), atol=1e-6)
        ref_lsm = np.asarray(x, np.float64) - _np_logsumexp(x)[:, None]
        np.testing.assert_allclose(self.variant(ops.log_softmax)(x), ref_lsm, rtol=1e-5, atol=1e-5 * scale)

    @chex.variants(with_jit=True, without_jit=True)
    def test_softmax_jacobian_closed_form(self):
        x = _rand((6,), 3.0, seed=7)
        jac = self.variant(jax.jacobian(ops.softmax))(x)
        p = _np_softmax(x[None])[0]
        np.testing.assert_allclose(jac, np.diag(p) - np.outer(p, p), atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_log_softmax_vjp_closed_form(self):
        x = _rand((6,), 3.0, seed=8)
        g = _rand((6,), 1.0, seed=9)
        _, vjp = jax.vjp(self.variant(ops.log_softmax), x)
        p = _np_softmax(x[None])[0]
        np.testing.assert_allclose(vjp(g)[0], g - p * g.sum(), atol=1e-5)

    def test_masked_entries(self):
        x = _rand((2, 4), 2.0, seed=10)
        mask = np.array([[1, 1, 0, 1], [0, 0, 0, 0]], bool)
        p = ops.softmax(x, where=mask)
        np.testing.assert_allclose(np.asarray(p)[0][mask[0]], _np_softmax(x[0][mask[0]][None])[0], atol=1e-6)
        np.testing.assert_array_equal(np.asarray(p)[~mask], 0.0)
        lsm = ops.log_softmax(x, where=mask)
        assert np.all(np.asarray(lsm)[~mask] == -np.inf)
        assert not np.any(np.isnan(lsm))
        g = jax.grad(lambda v: jnp.where(mask, ops.log_softmax(v, where=mask), 0.0).sum())(x)
        assert np.all(np.isfinite(g))
        np.testing.assert_array_equal(np.asarray(g)[~mask], 0.0)

    def test_check_grads_second_order(self):
        x = jnp.asarray(_rand((3, 4), 2.0, seed=11))
        check_grads(jax.jit(ops.softmax), (x,), order=2, atol=2e-2, rtol=2e-2)
        check_grads(jax.jit(ops.log_softmax), (x,), order=2, atol=2e-2, rtol=2e-2)


class CrossEntropyTest(parameterized.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_integer_labels_value_and_gradient(self):
        logits = _rand((4, 5), 10.0, seed=12)
        labels = np.array([0, 3, 4, 1], np.int32)
        loss = self.variant(ops.cross_entropy)(logits, labels)
        ref = -(np.asarray(logits, np.float64)[np.arange(4), labels] - _np_logsumexp(logits))
        np.testing.assert_allclose(loss, ref, rtol=1e-5)
        g = self.variant(jax.grad(lambda l: ops.cross_entropy(l, labels).sum()))(logits)
        np.testing.assert_allclose(g, _np_softmax(logits) - np.eye(5)[labels], atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_soft_targets_and_smoothing(self):
        logits = _rand((3, 4), 4.0, seed=13)
        t = np.random.default_rng(14).dirichlet(np.ones(4), 3).astype(np.float32)
        eps = 0.1
        loss = self.variant(functools.partial(ops.cross_entropy, label_smoothing=eps))(logits, t)
        ts = (1 - eps) * t + eps / 4
        lsm = np.asarray(logits, np.float64) - _np_logsumexp(logits)[:, None]
        np.testing.assert_allclose(loss, -(ts * lsm).sum(-1), rtol=1e-5)
        g = self.variant(jax.grad(lambda l: ops.cross_entropy(l, t, label_smoothing=eps).sum()))(logits)
        np.testing.assert_allclose(g, _np_softmax(logits) - ts, atol=1e-6)

    def test_class_axis(self):
        logits = _rand((2, 3, 5), 2.0, seed=15)  # classes on axis 1
        labels = np.array([[0, 1, 2, 0, 1], [2, 2, 1, 0, 0]], np.int32)
        got = ops.cross_entropy(logits, labels, axis=1)
        ref = ops.cross_entropy(np.moveaxis(logits, 1, -1), labels)
        np.testing.assert_allclose(got, ref, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_neg_inf_wrong_class_stays_finite(self):
        logits = jnp.array([[2.0, -jnp.inf, 0.5], [-jnp.inf, 1.0, 1.0]])
        labels = jnp.array([0, 2])
        loss = self.variant(ops.cross_entropy)(logits, labels)
        assert np.all(np.isfinite(loss))
        g = self.variant(jax.grad(lambda l: ops.cross_entropy(l, labels).sum()))(logits)
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g[0], [1 / (1 + np.exp(-1.5)) - 1, 0.0, 1 / (1 + np.exp(1.5))], rtol=1e-5)

    def test_check_grads(self):
        logits = jnp.asarray(_rand((2, 3), 2.0, seed=16))
        check_grads(jax.jit(lambda l: ops.cross_entropy(l, jnp.array([1, 2]))), (logits,), order=2,
                    atol=2e-2, rtol=2e-2)

    def test_bfloat16(self):
        logits = jnp.asarray(_rand((3, 4), 1e3, seed=17)).astype(jnp.bfloat16)
        loss = ops.cross_entropy(logits, jnp.array([0, 1, 2]))
        assert loss.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(loss, np.float32)))

    def test_bad_input(self):
        with self.assertRaisesRegex(TypeError, "logits must have a floating dtype"):
            ops.cross_entropy(jnp.zeros((2, 3), jnp.int32), jnp.array([0, 1]))
        with self.assertRaisesRegex(ValueError, r"labels must hold class ids in \[0, 3\); found 1 "
                                                r"outside, the first at index 1, values \[3\]"):
            ops.cross_entropy(jnp.zeros((2, 3)), jnp.array([0, 3]))
        with self.assertRaisesRegex(ValueError, "integer labels must have shape"):
            ops.cross_entropy(jnp.zeros((2, 3)), jnp.array([0, 1, 2]))
        with self.assertRaisesRegex(ValueError, "floating targets must have logits' shape"):
            ops.cross_entropy(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
        with self.assertRaisesRegex(ValueError, "label_smoothing"):
            ops.cross_entropy(jnp.zeros((2, 3)), jnp.array([0, 1]), label_smoothing=1.0)
        with self.assertRaisesRegex(TypeError, "label_smoothing must be a real number; got str"):
            ops.cross_entropy(jnp.zeros((2, 3)), jnp.array([0, 1]), label_smoothing="0.1")

    def test_out_of_range_labels_under_jit_give_nan_with_zero_gradient(self):
        """Traced labels cannot raise: an id outside [0, C) makes that example's loss NaN (so a
        train step over it is skipped) while its gradient, and the others' values, stay exact."""
        logits = jnp.asarray(_rand((4, 3), 2.0, seed=30))
        labels = jnp.array([0, 3, -1, 2])

        @jax.jit
        def run(l, y):
            g = jax.grad(lambda v: jnp.nansum(ops.cross_entropy(v, y)))(l)
            return ops.cross_entropy(l, y), g, ops.nll(ops.log_softmax(l), y)

        loss, g, nll = run(logits, labels)
        assert np.isnan(loss[1]) and np.isnan(loss[2]) and np.isnan(nll[1]) and np.isnan(nll[2])
        ref = _np_softmax(logits)
        np.testing.assert_allclose(loss[jnp.array([0, 3])], -np.log(ref[[0, 3], [0, 2]]),
                                   rtol=1e-5)
        assert np.all(np.isfinite(g)) and not np.any(g[1:3]) and np.all(np.asarray(g)[[0, 3]] != 0)
        lp = np.log(ref)
        np.testing.assert_allclose(nll[0], -lp[0, 0], rtol=1e-6)


class LossesTest(parameterized.TestCase):

    def test_nll(self):
        lp = np.log(np.random.default_rng(18).dirichlet(np.ones(4), 3)).astype(np.float32)
        labels = np.array([3, 0, 2])
        np.testing.assert_allclose(ops.nll(lp, labels), -lp[np.arange(3), labels], rtol=1e-6)
        g = jax.grad(lambda v: ops.nll(v, labels).sum())(lp)
        np.testing.assert_array_equal(g, -np.eye(4)[labels])
        with self.assertRaisesRegex(TypeError, "labels must have an integer dtype"):
            ops.nll(lp, labels.astype(np.float32))
        with self.assertRaisesRegex(ValueError, r"labels must hold class ids in \[0, 4\)"):
            ops.nll(lp, np.array([0, 4, 1]))

    def test_l2_loss(self):
        p, t = _rand((5,), 3.0, seed=19), _rand((5,), 3.0, seed=20)
        np.testing.assert_allclose(ops.l2_loss(p, t), 0.5 * (p.astype(np.float64) - t) ** 2, rtol=1e-6)
        np.testing.assert_allclose(jax.grad(lambda v: ops.l2_loss(v, t).sum())(p), p - t, rtol=1e-6)
        with self.assertRaisesRegex(ValueError, "must broadcast"):
            ops.l2_loss(p, np.zeros(3, np.float32))

    @chex.variants(with_jit=True, without_jit=True)
    def test_gaussian_nll_value_and_gradients(self):
        y, mu = _rand((6,), 5.0, seed=21), _rand((6,), 5.0, seed=22)
        ls = _rand((6,), 2.0, seed=23)
        val = self.variant(ops.gaussian_nll)(y, mu, ls)
        np.testing.assert_allclose(val, -stats.norm.logpdf(y, mu, np.exp(ls.astype(np.float64))), rtol=1e-5, atol=1e-5)
        g_mu, g_ls = self.variant(jax.grad(lambda m, s: ops.gaussian_nll(y, m, s).sum(), argnums=(0, 1)))(mu, ls)
        var = np.exp(2 * ls.astype(np.float64))
        np.testing.assert_allclose(g_mu, (mu - y) / var, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g_ls, 1 - (y - mu) ** 2 / var, rtol=1e-4, atol=1e-5)

    def test_gaussian_nll_check_grads(self):
        y, mu, ls = (jnp.asarray(_rand((3,), 1.0, seed=s)) for s in (24, 25, 26))
        check_grads(jax.jit(lambda m, s: ops.gaussian_nll(y, m, s)), (mu, ls), order=2, atol=2e-2,
                    rtol=2e-2)

    def test_gaussian_nll_bad_shapes(self):
        with self.assertRaisesRegex(ValueError, "must broadcast to one shape"):
            ops.gaussian_nll(np.zeros(3, np.float32), np.zeros(4, np.float32), np.zeros(4, np.float32))
        with self.assertRaisesRegex(TypeError, "log_std must have a floating dtype"):
            ops.gaussian_nll(np.zeros(3, np.float32), np.zeros(3, np.float32), np.zeros(3, np.int32))
