"""experiments/sequences end to end on the tiny ``:runlocal`` variant (a chain CRF and a hidden
CRF: tables, figures, metrics in range), and every objective's loss and decoding on random
potentials."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.sequences import train as seq_train
from experiments.sequences.configs import default as seq_default

PNG = b"\x89PNG\r\n\x1a\n"


def test_runlocal_writes_tables_figures_and_metrics(tmp_path):
    cfg = seq_default.get_config("runlocal")
    cfg.models = ("crf", "hcrf")
    results = seq_train.run(cfg, str(tmp_path))
    rows = results["rows"]
    assert list(rows) == ["crf", "hcrf"]
    assert list(rows["crf"]["decodings"]) == ["Viterbi", "max-marginal", "unaries alone"]
    for d in rows["crf"]["decodings"].values():
        for key in ("frame_accuracy", "clean_accuracy", "degraded_accuracy",
                    "sequence_accuracy"):
            assert 0.0 <= d[key] <= 1.0, key
    assert "decodings" not in rows["hcrf"] and 0.0 <= rows["hcrf"]["sequence_accuracy"] <= 1
    # Same network; the unary layer and the CRF (transitions [S, S], initial [S]) grow with S.
    s_c, s_h = (cfg.model[m].field.num_states for m in ("crf", "hcrf"))
    width = cfg.backbone.widths[-1]
    assert rows["hcrf"]["num_params"] - rows["crf"]["num_params"] == (
        (s_h - s_c) * (width + 1) + s_h * s_h + s_h - s_c * s_c - s_c)
    for name in ("sequences_decoding.png", "sequences_transitions.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG, name
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rows"]["crf"]["decodings"]["Viterbi"] == rows["crf"]["decodings"]["Viterbi"]
    assert saved["config"]["model"]["hcrf"]["objective"] == "hidden_crf"
    md = (tmp_path / "results.md").read_text().splitlines()
    assert md[0].startswith("| model | decoding | frame acc. % |")
    assert [line.split(" | ")[:2] for line in md[2:6]] == [
        ["| crf", "Viterbi"], ["| crf", "max-marginal"], ["| crf", "unaries alone"],
        ["| hcrf", "gesture arg-max"]]
    assert md[5].split(" | ")[2:5] == ["—", "—", "—"]


@pytest.mark.parametrize("name", seq_default.get_config().models)
def test_every_objective_trains_and_decodes_on_random_potentials(name):
    cfg = seq_default.get_config()
    spec = cfg.model[name]
    b, t, s = 3, 5, spec.field.num_states
    rng = np.random.default_rng(0)
    out = {"unary": jnp.asarray(rng.normal(size=(b, t, s)), jnp.float32),
           "transitions": jnp.asarray(rng.normal(size=(s, s)), jnp.float32),
           "initial": jnp.zeros((s,), jnp.float32)}
    batch = {"labels": jnp.asarray(rng.integers(0, 6, (b, t)), jnp.int32),
             "label": jnp.asarray(rng.integers(0, 4, b), jnp.int32)}
    loss_fn = seq_train.make_loss(spec.objective, spec.field)
    # One compiled program for the per-example losses and the gradient of their sum (eager
    # calls compile every operation of the forward and backward pass on their own).
    per_example, grad = jax.jit(lambda o: (loss_fn(o, batch), jax.grad(
        lambda p: loss_fn(p, batch).sum())(o)))(out)
    loss = per_example.sum()
    assert per_example.shape == (b,) and bool(jnp.isfinite(loss)) and loss > 0
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grad))
    dec = jax.jit(lambda o: seq_train.decode(spec.objective, spec.field, o))(out)
    assert set(dec.get("frames", {})) == set(seq_train.FRAME_DECODINGS.get(spec.objective, ()))
    for labels in dec.get("frames", {}).values():
        assert labels.shape == (b, t) and ((labels >= 0) & (labels < 6)).all()
    if "sequence" in dec:
        assert dec["sequence"].shape == (b,)
        assert ((dec["sequence"] >= 0) & (dec["sequence"] < 4)).all()


def test_graft_copies_the_network_and_part_scores():
    rng = np.random.default_rng(0)
    pre = {"params": {"backbone": {"w": rng.normal(size=(3,))},
                      "unary": {"kernel": rng.normal(size=(5, 6)), "bias": rng.normal(size=6)},
                      "crf": {"transitions": np.zeros((6, 6))}},
           "batch_stats": {"backbone": {"mean": rng.normal(size=(3,))}}}
    fresh = lambda s: {"params": {"backbone": {"w": np.zeros(3)},
                                  "unary": {"kernel": np.ones((5, s)), "bias": np.zeros(s)},
                                  "crf": {"transitions": np.ones((s, s))}},
                       "batch_stats": {"backbone": {"mean": np.zeros(3)}}}
    same = seq_train.graft(fresh(6), pre, 0.1)
    np.testing.assert_array_equal(same["params"]["unary"]["kernel"],
                                  pre["params"]["unary"]["kernel"])
    np.testing.assert_array_equal(same["batch_stats"]["backbone"]["mean"],
                                  pre["batch_stats"]["backbone"]["mean"])
    np.testing.assert_array_equal(same["params"]["crf"]["transitions"], np.ones((6, 6)))
    hidden = seq_train.graft(fresh(12), pre, 0.1)["params"]["unary"]
    k = pre["params"]["unary"]["kernel"]
    np.testing.assert_allclose(hidden["kernel"], np.concatenate([k, k], 1) + 0.1)
    np.testing.assert_array_equal(hidden["bias"], np.tile(pre["params"]["unary"]["bias"], 2))
    other = seq_train.graft(fresh(4), pre, 0.1)
    np.testing.assert_array_equal(other["params"]["unary"]["kernel"], np.ones((5, 4)))
    np.testing.assert_array_equal(other["params"]["backbone"]["w"], pre["params"]["backbone"]["w"])


def test_config_variants():
    cfg = seq_default.get_config()
    assert set(cfg.models) <= set(cfg.model)
    assert {cfg.model[m].objective for m in cfg.models} == set(seq_train.OBJECTIVES)
    with pytest.raises(ValueError, match="unknown config variant"):
        seq_default.get_config("nope")
    with pytest.raises(ValueError, match="objective"):
        seq_train.make_loss("softmax", {})
