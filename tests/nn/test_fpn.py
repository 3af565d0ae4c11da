"""FPN against a float64 NumPy transcription of torchvision's FeaturePyramidNetwork forward
(lateral 1x1, ``interpolate(mode="nearest")`` to the finer size, 3x3 output conv,
``LastLevelMaxPool``); names, parameter names and input errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vai_jax.nn.fpn import FPN, nearest_resize


def _conv(x, kernel, bias):
    """'SAME' stride-1 conv of ``[B, H, W, Ci]`` with ``[k, k, Ci, Co]`` (k odd), float64."""
    k = kernel.shape[0]
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    h, w = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for i in range(k):
        for j in range(k):
            out += xp[:, i:i + h, j:j + w] @ kernel[i, j]
    return out + bias


def _torch_nearest(x, size):
    """torch.nn.functional.interpolate(mode="nearest"): source index floor(i * in / out)."""
    rows = np.floor(np.arange(size[0]) * x.shape[1] / size[0]).astype(int)
    cols = np.floor(np.arange(size[1]) * x.shape[2] / size[1]).astype(int)
    return x[:, rows][:, :, cols]


def _reference(params, maps, pool):
    p = {k: {n: np.asarray(v, np.float64) for n, v in d.items()} for k, d in params.items()}
    n = len(maps)
    inner = [_conv(m, p[f"inner{i}"]["kernel"], p[f"inner{i}"]["bias"]) for i, m in enumerate(maps)]
    last = inner[-1]
    results = [_conv(last, p[f"layer{n - 1}"]["kernel"], p[f"layer{n - 1}"]["bias"])]
    for i in range(n - 2, -1, -1):
        last = inner[i] + _torch_nearest(last, inner[i].shape[1:3])
        results.insert(0, _conv(last, p[f"layer{i}"]["kernel"], p[f"layer{i}"]["bias"]))
    if pool:
        results.append(results[-1][:, ::2, ::2])  # max_pool2d(kernel 1, stride 2)
    return results


@pytest.mark.parametrize("sizes", [((16, 16), (8, 8), (4, 4)), ((15, 13), (8, 7), (4, 4))])
def test_matches_torchvision_forward(sizes):
    rng = np.random.default_rng(0)
    channels = (3, 5, 6)
    feats = {f"stage{i + 1}": rng.normal(size=(2,) + s + (c,)).astype(np.float32)
             for i, (s, c) in enumerate(zip(sizes, channels))}
    feats["stem"] = np.zeros((2, 32, 32, 1), np.float32)  # not in in_features: ignored
    names = ("stage1", "stage2", "stage3")
    fpn = FPN(names, features=4, last_level_max_pool=True)
    variables = fpn.init(jax.random.PRNGKey(0), feats, train=False)
    assert sorted(variables["params"]) == ["inner0", "inner1", "inner2", "layer0", "layer1", "layer2"]
    out = fpn.apply(variables, feats, train=False)
    assert list(out) == ["stage1", "stage2", "stage3", "pool"]
    want = _reference(variables["params"], [feats[n].astype(np.float64) for n in names], pool=True)
    for got, ref, s in zip(out.values(), want, sizes + (tuple(-(-v // 2) for v in sizes[-1]),)):
        assert got.shape == (2,) + s + (4,)
        np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-4, atol=1e-5)


def test_nearest_resize_is_a_repetition_at_twice_the_size():
    x = jnp.arange(2 * 3 * 4 * 2, dtype=jnp.float32).reshape(2, 3, 4, 2)
    np.testing.assert_array_equal(np.asarray(nearest_resize(x, (6, 8))),
                                  np.repeat(np.repeat(np.asarray(x), 2, 1), 2, 2))
    np.testing.assert_array_equal(np.asarray(nearest_resize(x, (5, 7))),
                                  _torch_nearest(np.asarray(x), (5, 7)))


def test_without_pool_level_and_missing_names():
    feats = {"a": jnp.zeros((1, 8, 8, 3)), "b": jnp.zeros((1, 4, 4, 3))}
    out = jax.eval_shape(lambda: FPN(("a", "b"), features=8).init_with_output(
        jax.random.PRNGKey(0), feats, train=False)[0])
    assert {k: v.shape for k, v in out.items()} == {"a": (1, 8, 8, 8), "b": (1, 4, 4, 8)}
    with pytest.raises(ValueError, match=r"FPN.in_features.*\['c'\]"):
        FPN(("a", "c")).init(jax.random.PRNGKey(0), feats, train=False)
