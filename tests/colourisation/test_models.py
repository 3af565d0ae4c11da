"""ColourisationNet: shapes, parameter layout, the fusion of the global vector into every
position, the global path at any input size, and bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vai_jax.colourisation import ColourisationNet, fuse_global

SMALL = dict(low_features=(4, 8, 8), low_strides=(2, 1, 2), mid_features=(8,),
             global_features=(8, 8), global_dims=(16, 8), fusion_features=8,
             decoder_features=(8, 4), classifier_hidden=8)


def _init(model, size, seed=0):
    x = jnp.zeros((1, size, size, 1))
    return model.init(jax.random.PRNGKey(seed), x, train=False)


def _apply(model, variables, x):
    return jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)


def test_output_shapes_range_and_heads():
    x = jax.random.uniform(jax.random.PRNGKey(1), (3, 32, 32, 1), minval=-1.0, maxval=1.0)
    model = ColourisationNet(**SMALL, num_classes=6, ab_scale=50.0)
    v = _init(model, 32)
    out = _apply(model, v, x)
    assert sorted(out) == ["ab", "logits"]
    assert out["ab"].shape == (3, 32, 32, 2) and out["ab"].dtype == jnp.float32
    assert out["logits"].shape == (3, 6)
    assert float(jnp.max(jnp.abs(out["ab"]))) <= 50.0
    out_train, updated = jax.jit(lambda v, x: model.apply(v, x, train=True,
                                                          mutable=["batch_stats"]))(v, x)
    assert out_train["ab"].shape == (3, 32, 32, 2) and "batch_stats" in updated


def test_parameter_layout_with_and_without_fusion():
    fused = _init(ColourisationNet(**SMALL, fusion=True), 32)["params"]
    local = _init(ColourisationNet(**SMALL, fusion=False), 32)["params"]
    head_only = _init(ColourisationNet(**SMALL, fusion=False, num_classes=4), 32)["params"]
    assert sorted(fused) == ["decoder_conv1", "decoder_conv2", "fusion", "global", "global_fc1",
                             "global_fc2", "low", "mid", "output"]
    assert "global" not in local and "global_fc1" not in local
    # The 1x1 fusion conv reads the mid-level features plus (with fusion) the global vector.
    assert fused["fusion"]["conv"]["kernel"].shape == (1, 1, 8 + 8, 8)
    assert local["fusion"]["conv"]["kernel"].shape == (1, 1, 8, 8)
    assert head_only["fusion"]["conv"]["kernel"].shape == (1, 1, 8, 8)
    assert "classifier_fc2" in head_only and head_only["classifier_fc2"]["kernel"].shape == (8, 4)
    # The classification head reads the penultimate global layer (16 wide), as in the paper.
    assert head_only["classifier_fc1"]["kernel"].shape == (16, 8)


def test_fuse_global_copies_the_vector_to_every_position():
    local = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5, 4))
    g = jnp.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 7.0]])
    out = np.asarray(fuse_global(local, g))
    assert out.shape == (2, 3, 5, 7)
    np.testing.assert_array_equal(out[..., :4], local)
    np.testing.assert_array_equal(out[..., 4:], np.broadcast_to(g[:, None, None], (2, 3, 5, 3)))


@pytest.mark.parametrize("global_size", [None, 32])
def test_far_region_changes_every_output_pixel_only_with_fusion(global_size):
    """Changing the top-left 8x8 block of a 64x64 input: without fusion the far (bottom-right)
    outputs stay exactly the same (outside the local receptive field); with fusion the global
    vector changes and with it the output at every pixel."""
    x = jax.random.uniform(jax.random.PRNGKey(2), (1, 64, 64, 1), minval=-1.0, maxval=1.0)
    x2 = x.at[:, :8, :8].set(1.0)
    diffs = {}
    for fusion in (False, True):
        model = ColourisationNet(**SMALL, fusion=fusion, global_size=global_size)
        v = _init(model, 64, seed=3)
        diffs[fusion] = np.abs(np.asarray(_apply(model, v, x2)["ab"] - _apply(model, v, x)["ab"]))
    local, fused = diffs[False], diffs[True]
    assert local[0, :8, :8].max() > 0  # the changed region itself
    assert local[0, 40:, 40:].max() == 0.0
    assert (fused.max(axis=-1) > 0).all()


def test_global_size_accepts_any_input_size_with_the_same_weights():
    model = ColourisationNet(**SMALL, num_classes=3, global_size=16)
    v = _init(model, 32)
    for size in (16, 32, 48):
        out = _apply(model, v, jnp.zeros((2, size, size, 1)))
        assert out["ab"].shape == (2, size, size, 2) and out["logits"].shape == (2, 3)


def test_bad_inputs():
    model = ColourisationNet(**SMALL)
    with pytest.raises(ValueError, match=r"x must have last dimension 1 \[B, H, W, 1\]"):
        model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)), train=False)
    with pytest.raises(ValueError, match="multiples of the low-level stride 4"):
        model.init(jax.random.PRNGKey(0), jnp.zeros((1, 30, 32, 1)), train=False)
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1), jnp.uint8), train=False)
    with pytest.raises(ValueError, match="low_strides must give a stride of 1 or 2"):
        ColourisationNet(**dict(SMALL, low_strides=(2, 4, 1))).init(
            jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)), train=False)
