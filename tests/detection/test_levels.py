"""Feature maps chosen by in_features and their strides."""
import jax.numpy as jnp
import pytest

from vai_jax.detection.levels import as_names, feature_strides, select_maps


def test_select_maps_in_order_and_errors():
    feats = {"stage1": jnp.zeros((1, 16, 16, 2)), "stage2": jnp.zeros((1, 8, 8, 2))}
    assert [m.shape[1] for m in select_maps(feats, ("stage2", "stage1"), owner="X")] == [8, 16]
    assert [m.shape[1] for m in select_maps(feats, "stage1", owner="X")] == [16]
    assert as_names("a") == ("a",) and as_names(["a", "b"]) == ("a", "b")
    with pytest.raises(ValueError, match=r"X.in_features names \['stage3'\].*\['stage1', 'stage2'\]"):
        select_maps(feats, ("stage1", "stage3"), owner="X")
    with pytest.raises(ValueError, match="at least one"):
        select_maps(feats, (), owner="X")


def test_feature_strides():
    maps = [jnp.zeros((1, 16, 12, 1)), jnp.zeros((1, 4, 3, 1))]
    assert feature_strides((64, 48), maps) == (4, 16)
    with pytest.raises(ValueError, match="integer stride"):
        feature_strides((64, 48), [jnp.zeros((1, 16, 16, 1))])
