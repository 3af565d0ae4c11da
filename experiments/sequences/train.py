"""Structured prediction over time on shape clips (the logic of ``main.py``).

``run(config, workdir)`` first trains a per-frame CNN ``create_model(**config.backbone)`` with
a linear ``unary`` layer on single frames (``config.pretrain``), then, from that network and
at one budget, one :class:`vai_jax.nn.crf.ConditionalNeuralField` per entry of
``config.models`` end to end on clips of
:class:`vai_jax.data.shapes_sequences.ShapesSequences`, each with its objective (the CRF's
parameters learn ``config.crf_lr_multiplier`` times faster than the network's):

* ``frame_softmax``: per-frame softmax cross-entropy (the CRF is left unused);
* ``chain_crf``: linear-chain CRF log-likelihood of the frame labels (conditional neural
  field, Peng et al. 2009), decoded by Viterbi, by max-marginals and by its unaries alone;
* ``latent_dynamic_crf``: several hidden states per label (Morency et al. 2007), decoded by
  the arg-max of the per-frame label marginals and by the Viterbi state path;
* ``hidden_crf``: one label per clip, hidden states per gesture (Quattoni et al. 2007);
* ``bag_of_frames``: the clip's mean per-frame scores as gesture logits (order-free).

It scores per-frame accuracy (all, clean and degraded frames) and per-clip gesture accuracy
(the per-frame models' labels are read by the gestures' known chains,
:func:`~vai_jax.data.shapes_sequences.gesture_log_likelihoods`) and writes ``results.json``,
``results.md`` and the figures of :mod:`experiments.sequences.plots`.
"""
from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

import vai_jax
from experiments.sequences import plots
from vai_jax.analysis import count_params
from vai_jax.analysis.timing import describe_devices
from vai_jax.data import shapes_sequences
from vai_jax.data.shapes_sequences import ShapesSequences, gesture_log_likelihoods
from vai_jax.data.sources import RandomBatches
from vai_jax.nn.crf import ConditionalNeuralField
from vai_jax.ops import crf as chain
from vai_jax.ops.numerics import cross_entropy
from vai_jax.train import parallel
from vai_jax.train.loop import fit
from vai_jax.train.optim import make_optimizer, make_schedule
from vai_jax.train.state import TrainState, init_variables
from vai_jax.train.step import make_train_step
from vai_jax.viz.tables import markdown_table

OBJECTIVES = ("frame_softmax", "chain_crf", "latent_dynamic_crf", "hidden_crf",
              "bag_of_frames")
KEYS = ("frames", "labels", "label", "occluded", "noisy")


# ------------------------------------------------------------------------------------ data
def load_split(cfg, split: str, num_examples: int) -> dict:
    """A split of the shape clips as in-memory arrays (``KEYS``)."""
    ds = ShapesSequences(**cfg.data, split=split, num_examples=num_examples, seed=cfg.seed)
    return ds.materialise(KEYS).arrays


def preprocess(batch, rng, *, train):
    del rng, train
    return batch["frames"].astype(jnp.float32) / 127.5 - 1.0


# ---------------------------------------------------------------------------------- models
def build_model(cfg, name: str) -> ConditionalNeuralField:
    """``ConditionalNeuralField(create_model(**cfg.backbone), **cfg.model[name].field)``."""
    backbone = vai_jax.create_model(**cfg.backbone, num_classes=0)
    return ConditionalNeuralField(backbone, **cfg.model[name].field)


def potentials(module: ConditionalNeuralField, frames, *, train: bool) -> dict:
    """The field's unaries ``[B, T, S]`` and its CRF's ``transitions`` and ``initial``
    (passed to ``apply`` as ``method``)."""
    return {"unary": module(frames, train=train), "transitions": module.crf.transitions,
            "initial": module.crf.initial}


def _state_to_label(field):
    s2l = field.get("state_to_label")
    return None if s2l is None else np.asarray(s2l)


def make_loss(objective: str, field):
    """The train-step loss ``(outputs, batch) -> [B]`` of ``objective`` (per frame for the
    chain objectives, so that one learning rate suits all)."""
    s2l = _state_to_label(field)

    def frame_softmax(out, batch):
        return jnp.mean(cross_entropy(out["unary"], batch["labels"]), axis=-1)

    def chain_crf(out, batch):
        ll = chain.chain_log_likelihood(out["unary"], out["transitions"], batch["labels"],
                                        initial=out["initial"], state_to_label=s2l)
        return -ll / out["unary"].shape[1]

    def hidden_crf(out, batch):
        logp = chain.chain_sequence_log_probs(out["unary"], out["transitions"], s2l,
                                              initial=out["initial"])
        return -jnp.take_along_axis(logp, batch["label"][:, None], axis=-1)[:, 0]

    def bag_of_frames(out, batch):
        return cross_entropy(jnp.mean(out["unary"], axis=1), batch["label"])

    losses = {"frame_softmax": frame_softmax, "chain_crf": chain_crf,
              "latent_dynamic_crf": chain_crf, "hidden_crf": hidden_crf,
              "bag_of_frames": bag_of_frames}
    if objective not in losses:
        raise ValueError(f"objective must be one of {OBJECTIVES}; got {objective!r}")
    return losses[objective]


# Per-frame decodings of each objective, the model's own first (table and figure order).
FRAME_DECODINGS = {"frame_softmax": ("per-frame arg-max",),
                   "chain_crf": ("Viterbi", "max-marginal", "unaries alone"),
                   "latent_dynamic_crf": ("label marginals", "Viterbi states")}


def decode(objective: str, field, out) -> dict:
    """Decisions from the potentials (jit-compatible): ``{"frames": {decoding: [B, T]}}``
    per-frame labels (decodings named in ``FRAME_DECODINGS``) and/or ``"sequence" [B]``
    gestures."""
    u, a, init = out["unary"], out["transitions"], out["initial"]
    s2l = _state_to_label(field)
    if objective == "frame_softmax":
        return {"frames": {"per-frame arg-max": jnp.argmax(u, -1)}}
    if objective == "chain_crf":
        return {"frames": {
            "Viterbi": chain.chain_viterbi(u, a, initial=init)[0],
            "max-marginal": jnp.argmax(chain.chain_marginals(u, a, initial=init), -1),
            "unaries alone": jnp.argmax(u, -1)}}
    if objective == "latent_dynamic_crf":
        marg = chain.chain_label_marginals(u, a, s2l, initial=init)
        path = chain.chain_viterbi(u, a, initial=init)[0]
        return {"frames": {"label marginals": jnp.argmax(marg, -1),
                           "Viterbi states": jnp.asarray(s2l)[path]}}
    if objective == "hidden_crf":
        return {"sequence": jnp.argmax(chain.chain_sequence_log_probs(u, a, s2l, initial=init),
                                       -1)}
    if objective == "bag_of_frames":
        return {"sequence": jnp.argmax(jnp.mean(u, axis=1), -1)}
    raise ValueError(f"objective must be one of {OBJECTIVES}; got {objective!r}")


# -------------------------------------------------------------------------------- training
def make_tx(cfg, num_steps: int, base_lr: float):
    """AdamW (``cfg.optimizer``, ``cfg.schedule``) with the CRF's parameters at
    ``cfg.crf_lr_multiplier`` times the learning rate: transition scores of a few units
    would otherwise need thousands of steps."""
    def tx_at(lr):
        schedule = make_schedule(**dict(cfg.schedule, base_lr=lr), total_steps=num_steps)
        return make_optimizer(**cfg.optimizer, learning_rate=schedule)

    labels = lambda params: {k: jax.tree.map(lambda _: "crf" if k == "crf" else "network", v)
                             for k, v in params.items()}
    return optax.multi_transform(
        {"network": tx_at(base_lr), "crf": tx_at(base_lr * cfg.crf_lr_multiplier)}, labels)


def fit_model(cfg, model, variables, objective: str, field, arrays: dict, *, num_steps: int,
              batch_size: int, base_lr: float, desc: str):
    """Train ``model`` from ``variables`` with the library's pieces; returns (variables,
    FitResult, cpu_seconds)."""
    state_rng = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 1)
    mesh = parallel.make_mesh()
    parallel.check_batch_size(batch_size, mesh, f"the batch size of {desc}")
    apply_fn = lambda v, x, **kw: model.apply(v, x, method=potentials, **kw)
    state = parallel.replicate(
        TrainState.create(apply_fn=apply_fn, variables=variables,
                          tx=make_tx(cfg, num_steps, base_lr), rng=state_rng), mesh)
    step = parallel.data_parallel(
        make_train_step(make_loss(objective, field), preprocess_fn=preprocess), mesh)
    tqdm.write(f"--- {desc}: {count_params(variables):,} parameters, {num_steps} steps")
    cpu0 = time.process_time()
    result = fit(state, train_step=step,
                 train_iter=RandomBatches(arrays, batch_size, cfg.seed),
                 num_steps=num_steps, batch_size=batch_size, log_every=cfg.log_every,
                 progress=cfg.progress)
    return result.state.variables(), result, time.process_time() - cpu0


def single_frames(arrays: dict) -> dict:
    """Clips ``[N, T, ...]`` as one-frame clips ``[N·T, 1, ...]`` (``label`` dropped)."""
    return {k: v.reshape((-1, 1) + v.shape[2:]) for k, v in arrays.items() if k != "label"}


def pretrain(cfg, train_arrays: dict):
    """The per-frame network (``cfg.model[cfg.pretrain.model]``, per-frame softmax) trained
    on single frames; returns (variables, FitResult, cpu_seconds)."""
    p = cfg.pretrain
    spec = cfg.model[p.model]
    model = build_model(cfg, p.model)
    s = cfg.data.image_size
    variables = init_variables(model, (1, 1, s, s, 3), rng=jax.random.PRNGKey(cfg.seed))
    return fit_model(cfg, model, variables, "frame_softmax", spec.field,
                     single_frames(train_arrays), num_steps=p.num_steps,
                     batch_size=p.batch_size, base_lr=p.base_lr,
                     desc=f"pre-training {p.model} on single frames")


def graft(variables: dict, pretrained: dict, state_init_noise: float) -> dict:
    """``variables`` with the pretrained backbone (parameters and BatchNorm statistics) and
    ``unary`` layer (host copies: training donates its state's buffers). With ``S`` states
    for ``C`` pretrained part scores, ``S`` a multiple of ``C``, state ``s`` starts as part
    ``s mod C`` plus ``state_init_noise`` times its fresh initialisation (which breaks the
    symmetry between copies); with another ``S`` the unary layer stays fresh."""
    pretrained = jax.tree.map(np.array, pretrained)
    out = {k: dict(v) for k, v in variables.items()}
    for collection in ("params", "batch_stats"):
        if "backbone" in pretrained.get(collection, {}):
            out[collection]["backbone"] = pretrained[collection]["backbone"]
    fresh, parts = out["params"]["unary"], pretrained["params"]["unary"]
    c, s = parts["kernel"].shape[-1], fresh["kernel"].shape[-1]
    if s == c:
        out["params"]["unary"] = parts
    elif s % c == 0:
        part = np.arange(s) % c
        out["params"]["unary"] = {
            "kernel": parts["kernel"][:, part] + state_init_noise * np.asarray(fresh["kernel"]),
            "bias": parts["bias"][part]}
    return out


def train_model(cfg, name: str, train_arrays: dict, pretrained: dict | None):
    """Train model ``name`` end to end on clips, from the pretrained network when given;
    returns (model, variables, FitResult, num_params, cpu_seconds)."""
    spec = cfg.model[name]
    model = build_model(cfg, name)
    t, s = cfg.data.num_frames, cfg.data.image_size
    variables = init_variables(model, (1, t, s, s, 3), rng=jax.random.PRNGKey(cfg.seed))
    if pretrained is not None:
        variables = graft(variables, pretrained, cfg.state_init_noise)
    trained, result, cpu = fit_model(
        cfg, model, variables, spec.objective, spec.field, train_arrays,
        num_steps=cfg.num_steps, batch_size=cfg.batch_size, base_lr=cfg.schedule.base_lr,
        desc=f"{name} ({spec.objective})")
    return model, trained, result, count_params(variables), cpu


def predict(cfg, name: str, model, variables, frames) -> dict:
    """:func:`decode`'s outputs over ``frames [N, T, H, W, 3]`` (NumPy), in batches."""
    spec = cfg.model[name]

    @jax.jit
    def run(v, x):
        out = model.apply(v, preprocess({"frames": x}, None, train=False), train=False,
                          method=potentials)
        return decode(spec.objective, spec.field, out)

    bs, outs = cfg.eval_batch_size, []
    for i in range(0, len(frames), bs):
        x = frames[i:i + bs]
        n = len(x)
        if n < bs:  # one compiled shape
            x = np.concatenate([x, np.repeat(x[-1:], bs - n, 0)])
        outs.append(jax.tree.map(lambda a: np.asarray(a)[:n], run(variables, x)))
    out = jax.tree.map(lambda *parts: np.concatenate(parts), *outs)
    if "frames" in out:  # jit returns dicts with sorted keys
        out["frames"] = {k: out["frames"][k] for k in FRAME_DECODINGS[spec.objective]}
    return out


# ------------------------------------------------------------------------------- scoring
def frame_scores(labels, test: dict) -> dict:
    """Accuracy of per-frame ``labels [N, T]`` on all, clean and degraded frames, and the
    gesture accuracy of the known chains read on them."""
    ok = labels == test["labels"]
    degraded = test["occluded"] | test["noisy"]
    gestures = gesture_log_likelihoods(labels).argmax(-1)
    return {"frame_accuracy": float(ok.mean()), "clean_accuracy": float(ok[~degraded].mean()),
            "degraded_accuracy": float(ok[degraded].mean()),
            "sequence_accuracy": float((gestures == test["label"]).mean())}


def score(pred: dict, test: dict) -> dict:
    """``{"decodings": {decoding: frame_scores}}`` and/or the model's own
    ``"sequence_accuracy"``."""
    row = {}
    if "frames" in pred:
        row["decodings"] = {k: frame_scores(v, test) for k, v in pred["frames"].items()}
    if "sequence" in pred:
        row["sequence_accuracy"] = float((pred["sequence"] == test["label"]).mean())
    return row


def reference_rows(test: dict) -> dict:
    """What the true part labels give: the known-chain decoder's gesture accuracy on them
    (the ceiling of the per-frame models' sequence column)."""
    truth = gesture_log_likelihoods(test["labels"]).argmax(-1)
    return {"true_labels_sequence_accuracy": float((truth == test["label"]).mean())}


SEQUENCE_DECODING = {"hidden_crf": "gesture arg-max", "bag_of_frames": "gesture arg-max"}


def results_table(rows: dict) -> str:
    """One line per model and decoding."""
    pct = lambda r, k: f"{100 * r[k]:.1f}" if k in r else "—"
    body = []
    for name, r in rows.items():
        cost = [f"{r['num_params']:,}", f"{r['train_seconds']:.0f}", f"{r['cpu_seconds']:.0f}"]
        for decoding, d in r.get("decodings", {}).items():
            body.append([name, decoding, pct(d, "frame_accuracy"), pct(d, "clean_accuracy"),
                         pct(d, "degraded_accuracy"), pct(d, "sequence_accuracy") + " (chains)"]
                        + cost)
        if "sequence_accuracy" in r:
            body.append([name, r["sequence_decoding"], "—", "—", "—",
                         pct(r, "sequence_accuracy")] + cost)
    return markdown_table(
        ["model", "decoding", "frame acc. %", "clean frames %", "degraded frames %",
         "clip (gesture) acc. %", "params", "training s (wall)", "training s (CPU)"],
        body, align="llrrrrrrr")


# ----------------------------------------------------------------------------------- run
def run(cfg, workdir: str) -> dict:
    """Train and score every model of ``cfg.models``; returns the results dict."""
    t0 = time.perf_counter()
    os.makedirs(workdir, exist_ok=True)
    for name in cfg.models:
        if name not in cfg.model:
            raise ValueError(f"config.models names {name!r}, which config.model lacks; "
                             f"choose from {sorted(cfg.model)}")
        if cfg.model[name].objective not in OBJECTIVES:
            raise ValueError(f"config.model.{name}.objective must be one of {OBJECTIVES}; got "
                             f"{cfg.model[name].objective!r}")
    train = load_split(cfg, "train", cfg.num_train)
    test = load_split(cfg, "test", cfg.num_test)
    tqdm.write(f"data: {cfg.num_train} train / {cfg.num_test} test clips of "
               f"{cfg.data.num_frames} frames, {time.perf_counter() - t0:.1f} s")
    pretrained, pre_result, pre_cpu = None, None, 0.0
    if cfg.pretrain.num_steps:
        pretrained, pre_result, pre_cpu = pretrain(cfg, train)
    rows, preds, trained = {}, {}, {}
    for name in cfg.models:
        model, variables, result, n_params, cpu = train_model(cfg, name, train, pretrained)
        preds[name] = predict(cfg, name, model, variables, test["frames"])
        rows[name] = dict(score(preds[name], test), num_params=n_params,
                          train_seconds=result.train_seconds, cpu_seconds=cpu)
        if "sequence_accuracy" in rows[name]:
            rows[name]["sequence_decoding"] = SEQUENCE_DECODING[cfg.model[name].objective]
        trained[name] = variables
        tqdm.write(f"{name}: {json.dumps(rows[name])}")
    table = results_table(rows)
    reference = reference_rows(test)
    frames = {f"{name}: {k}": v for name in cfg.models for k, v in
              list(preds[name].get("frames", {}).items())[:1]}  # each model's own decoding
    n = min(cfg.num_figure_clips, cfg.num_test)
    plots.plot_decoding(os.path.join(workdir, "sequences_decoding.png"), test, frames, n,
                        shapes_sequences.CLASS_NAMES)
    chains = {name: np.asarray(trained[name]["params"]["crf"]["transitions"])
              for name in cfg.models if cfg.model[name].objective == "chain_crf"}
    if chains:
        plots.plot_transitions(os.path.join(workdir, "sequences_transitions.png"), chains,
                               test, shapes_sequences.CLASS_NAMES)
    seconds = time.perf_counter() - t0
    pre = (f"Every model starts from one per-frame network trained for {cfg.pretrain.num_steps}"
           f" steps × {cfg.pretrain.batch_size} single frames ({pre_result.train_seconds:.0f} s"
           f" wall, {pre_cpu:.0f} s CPU), then trains {cfg.num_steps} steps × "
           f"{cfg.batch_size} clips with its objective (the times above)."
           if pre_result is not None else
           f"Every model trains {cfg.num_steps} steps × {cfg.batch_size} clips from scratch.")
    report = "\n\n".join([
        table,
        pre,
        f"Known-chain decoder on the true part labels: "
        f"{100 * reference['true_labels_sequence_accuracy']:.1f}% of the clips' gestures. "
        f"{cfg.num_test} test clips × {cfg.data.num_frames} frames; "
        f"{100 * float((test['occluded'] | test['noisy']).mean()):.1f}% of the frames degraded.",
        f"{seconds:.0f} s on {describe_devices()}."])
    results = {"rows": rows, "reference": reference, "seconds": seconds,
               "pretrain_seconds": pre_result.train_seconds if pre_result else 0.0,
               "pretrain_cpu_seconds": pre_cpu,
               "devices": describe_devices(), "jax_version": jax.__version__,
               "config": cfg.to_dict()}
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=str)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(report + "\n")
    results["report"] = report
    return results
