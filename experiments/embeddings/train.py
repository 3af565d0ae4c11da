"""What a classifier's embeddings encode (the logic of ``main.py``).

``run(config, workdir)`` trains a classifier ``create_model(**config.backbone)`` on the
built-in shapes (whose rotation and scale are known: :meth:`ShapesDataset.get_parameters`)
with the library's training pieces, then asks of the raw pixels and of every stage's
globally average-pooled features, for the trained network and for the same network at its
random initialisation:

* class: a linear softmax probe (:func:`vai_jax.analysis.probing.train_linear_probe`) and the
  class agreement of the ``k`` nearest training images
  (:func:`vai_jax.analysis.embeddings.knn_agreement`);
* rotation: ridge regression of ``(cos kθ, sin kθ)`` for the classes with ``k``-fold
  rotational symmetry (circles have no rotation), scored by R² and the median angle error;
* scale: ridge regression of the log radius, scored by R²;

and projects the test images on two principal components, coloured by class, rotation and
scale. It writes ``results.json``, ``results.md`` and the figures of
:mod:`experiments.embeddings.plots`.
"""
from __future__ import annotations

import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

import vai_jax
from experiments.embeddings import plots
from vai_jax.analysis import count_params
from vai_jax.analysis import embeddings as emb
from vai_jax.analysis.probing import extract_features, train_linear_probe
from vai_jax.analysis.timing import describe_devices
from vai_jax.classification.losses import softmax_cross_entropy
from vai_jax.data.shapes import CLASS_NAMES, NUM_CLASSES, ShapesDataset
from vai_jax.data.shapes_geometry import MAX_ROTATION
from vai_jax.data.sources import RandomBatches
from vai_jax.train.loop import fit
from vai_jax.train.optim import make_optimizer, make_schedule
from vai_jax.train.state import TrainState, init_variables
from vai_jax.train.step import make_train_step
from vai_jax.viz.tables import markdown_table

PIXELS = "pixels"
# Order of rotational symmetry per class: rotations are sampled within 75% of half the
# symmetry period (MAX_ROTATION = 0.75·π/k); 0 for the circle, which has no rotation.
SYMMETRY_ORDER = np.array([0 if m == 0 else int(round(0.75 * math.pi / m))
                           for m in MAX_ROTATION])


# ------------------------------------------------------------------------------------ data
def load_split(cfg, split: str, num_examples: int) -> dict:
    """``image`` uint8 ``[N, H, W, 3]``, ``label`` int32 ``[N]``, ``rotation`` and ``scale``
    float32 ``[N]`` of the shapes classification task."""
    ds = ShapesDataset("classification", **cfg.data, split=split, num_examples=num_examples,
                       seed=cfg.seed)
    arrays = dict(ds.materialise(("image", "label")).arrays)
    params = ds.get_parameters(range(num_examples))
    arrays["rotation"] = params["rotation"][:, 0]
    arrays["scale"] = params["scale"][:, 0]
    return arrays


def preprocess(batch, rng, *, train):
    del rng, train
    return batch["image"].astype(jnp.float32) / 127.5 - 1.0


# -------------------------------------------------------------------------------- training
def build_model(cfg):
    return vai_jax.create_model(**cfg.backbone, num_classes=NUM_CLASSES)


def train_classifier(cfg, model, variables, train: dict):
    """Train with the library's pieces; returns (variables, FitResult, cpu_seconds)."""
    schedule = make_schedule(**cfg.schedule, total_steps=cfg.num_steps)
    tx = make_optimizer(**cfg.optimizer, learning_rate=schedule)
    state = TrainState.create(apply_fn=model.apply, variables=variables, tx=tx,
                              rng=jax.random.PRNGKey(cfg.seed + 1))
    step = jax.jit(make_train_step(softmax_cross_entropy, preprocess_fn=preprocess))
    cpu0 = time.process_time()
    result = fit(state, train_step=step,
                 train_iter=RandomBatches({"image": train["image"], "label": train["label"]},
                                          cfg.batch_size, cfg.seed),
                 num_steps=cfg.num_steps, batch_size=cfg.batch_size, log_every=cfg.log_every,
                 progress=cfg.progress)
    return result.state.variables(), result, time.process_time() - cpu0


def accuracy(model, variables, images, labels, batch_size: int) -> float:
    run = jax.jit(lambda v, x: jnp.argmax(model.apply(v, x, train=False)[0], -1))
    correct = 0
    for i in range(0, len(images), batch_size):
        x = preprocess({"image": images[i:i + batch_size]}, None, train=False)
        correct += int(np.sum(np.asarray(run(variables, x)) == labels[i:i + batch_size]))
    return correct / len(images)


# ------------------------------------------------------------------------------- analysis
def representations(cfg, model, networks: dict, train: dict, test: dict) -> dict:
    """``{name: (train features [N, D], test features [M, D])}``: the raw pixels, then
    ``"<network> <stage>"`` for every network of ``networks`` and stage of ``cfg.stages``
    (average-pooled to about ``cfg.target_dim`` numbers; 1 is global average pooling)."""
    flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0
    reps = {PIXELS: (flat(train["image"]), flat(test["image"]))}
    x_train = np.asarray(preprocess(train, None, train=False))
    x_test = np.asarray(preprocess(test, None, train=False))
    for net, variables in networks.items():
        kw = dict(target_dim=cfg.target_dim, batch_size=cfg.eval_batch_size, train=False)
        tr = extract_features(model, variables, x_train, cfg.stages, **kw)
        te = extract_features(model, variables, x_test, cfg.stages, **kw)
        for stage in cfg.stages:
            reps[f"{net} {stage}"] = (tr[stage], te[stage])
    return reps


def rotation_targets(data: dict):
    """Rows with a rotation (not circles), their symmetry orders and ``(cos kθ, sin kθ)``."""
    order = SYMMETRY_ORDER[data["label"]]
    rows = np.nonzero(order > 0)[0]
    return rows, order[rows], emb.symmetric_angle_targets(data["rotation"][rows], order[rows])


def decode_all(cfg, reps: dict, train: dict, test: dict) -> dict:
    """The table's numbers per representation."""
    rot_tr, _, rot_y_tr = rotation_targets(train)
    rot_te, order_te, rot_y_te = rotation_targets(test)
    scale_tr, scale_te = np.log(train["scale"]), np.log(test["scale"])
    out = {}
    for name, (ftr, fte) in tqdm(reps.items(), desc="decoding", disable=not cfg.progress):
        probe = train_linear_probe(ftr, train["label"], fte, test["label"],
                                   num_classes=NUM_CLASSES, **cfg.probe)
        knn = emb.knn_agreement(ftr, train["label"], fte, test["label"], k=cfg.knn_k)
        rot = emb.ridge_decode(ftr[rot_tr], rot_y_tr, fte[rot_te], rot_y_te, **cfg.ridge)
        err = emb.angular_error(emb.angle_from_targets(rot.predictions, order_te),
                                test["rotation"][rot_te], order_te)
        scale = emb.ridge_decode(ftr, scale_tr, fte, scale_te, **cfg.ridge)
        out[name] = {"dim": int(ftr.shape[1]), "class_probe": probe.test_accuracy,
                     "class_knn": knn, "rotation_r2": rot.r2,
                     "rotation_median_error_deg": float(np.degrees(np.median(err))),
                     "rotation_l2": rot.l2, "log_scale_r2": scale.r2, "scale_l2": scale.l2}
    return out


def chance_rows(test: dict) -> dict:
    """Reference levels: the majority-class rate, the k-NN agreement of unrelated features
    (``Σ_c p_c²``) and the median angle error of always answering 0."""
    p = np.bincount(test["label"], minlength=NUM_CLASSES) / len(test["label"])
    rows, order, _ = rotation_targets(test)
    err0 = emb.angular_error(0.0, test["rotation"][rows], order)
    return {"majority_class": float(p.max()), "knn_unrelated": float((p ** 2).sum()),
            "rotation_median_error_deg_zero": float(np.degrees(np.median(err0)))}


def results_table(rows: dict) -> str:
    body = [[name, r["dim"], f"{100 * r['class_probe']:.1f}", f"{100 * r['class_knn']:.1f}",
             f"{r['rotation_r2']:.2f}", f"{r['rotation_median_error_deg']:.1f}",
             f"{r['log_scale_r2']:.2f}"] for name, r in rows.items()]
    return markdown_table(
        ["representation", "dim", "class: linear probe %", "class: k-NN agreement %",
         "rotation R²", "rotation median error °", "log-scale R²"], body, align="lrrrrrr")


def pca_panels(cfg, reps: dict, test: dict) -> dict:
    """2-D PCA of the test features of ``cfg.pca_representations``: all images, and the
    images of class ``cfg.pca_class`` alone."""
    cls = CLASS_NAMES.index(cfg.pca_class)
    one = test["label"] == cls
    out = {}
    for name in cfg.pca_representations:
        fte = reps[name][1]
        every, single = emb.pca(fte, 2), emb.pca(fte[one], 2)
        out[name] = {"all": every.projected, "all_ratio": every.explained_variance_ratio,
                     "class": single.projected, "class_ratio": single.explained_variance_ratio}
    return out


def tsne_panels(cfg, reps: dict, test: dict) -> dict:
    """2-D t-SNE (perplexity ``cfg.tsne_perplexity``) of the same sets as :func:`pca_panels`."""
    one = test["label"] == CLASS_NAMES.index(cfg.pca_class)
    out = {}
    for name in tqdm(cfg.pca_representations, desc="t-SNE", disable=not cfg.progress):
        fte = reps[name][1]
        out[name] = {"all": emb.tsne(fte, perplexity=cfg.tsne_perplexity, seed=cfg.seed),
                     "class": emb.tsne(fte[one], perplexity=min(cfg.tsne_perplexity,
                                                                (int(one.sum()) - 1) / 3),
                                       seed=cfg.seed)}
    return out


# ----------------------------------------------------------------------------------- run
def run(cfg, workdir: str) -> dict:
    """Train the classifier, analyse its embeddings; returns the results dict."""
    t0 = time.perf_counter()
    if cfg.pca_class not in CLASS_NAMES or SYMMETRY_ORDER[CLASS_NAMES.index(cfg.pca_class)] == 0:
        raise ValueError(f"config.pca_class must be a rotated class of {CLASS_NAMES[1:]}; got "
                         f"{cfg.pca_class!r}")
    os.makedirs(workdir, exist_ok=True)
    train = load_split(cfg, "train", cfg.num_train)
    test = load_split(cfg, "test", cfg.num_test)
    model = build_model(cfg)
    s = cfg.data.image_size
    initial = init_variables(model, (1, s, s, 3), rng=jax.random.PRNGKey(cfg.seed))
    tqdm.write(f"--- {cfg.backbone.name}: {count_params(initial):,} parameters, "
               f"{cfg.num_steps} steps")
    trained, result, cpu = train_classifier(cfg, model, initial, train)
    test_top1 = accuracy(model, trained, test["image"], test["label"], cfg.eval_batch_size)
    networks = {"trained": trained}
    if cfg.random_network:
        networks["random"] = initial
    reps = representations(cfg, model, networks, train, test)
    rows = decode_all(cfg, reps, train, test)
    chance = chance_rows(test)
    panels = pca_panels(cfg, reps, test)
    cls = CLASS_NAMES.index(cfg.pca_class)
    one = test["label"] == cls
    colours = (test["label"], test["rotation"][one] * SYMMETRY_ORDER[cls],
               np.log(test["scale"][one]), CLASS_NAMES, cfg.pca_class)
    plots.plot_pca(os.path.join(workdir, "embeddings_pca.png"), panels, *colours)
    if cfg.tsne_perplexity:
        plots.plot_pca(os.path.join(workdir, "embeddings_tsne.png"),
                       tsne_panels(cfg, reps, test), *colours, method="t-SNE")
    plots.plot_depth(os.path.join(workdir, "embeddings_depth.png"), rows, list(networks),
                     cfg.stages, PIXELS, chance)
    seconds = time.perf_counter() - t0
    table = results_table(rows)
    report = "\n\n".join([
        table,
        f"Classifier: {count_params(initial):,} parameters, test top-1 {100 * test_top1:.1f}% "
        f"after {result.step} steps × {cfg.batch_size} ({result.train_seconds:.0f} s wall, "
        f"{cpu:.0f} s CPU). {cfg.num_train} train / {cfg.num_test} test images, "
        f"{cfg.data.image_size}×{cfg.data.image_size}. Chance: majority class "
        f"{100 * chance['majority_class']:.1f}%, k-NN agreement of unrelated features "
        f"{100 * chance['knn_unrelated']:.1f}%, median rotation error of answering 0 "
        f"{chance['rotation_median_error_deg_zero']:.1f}°.",
        f"{seconds:.0f} s on {describe_devices()}."])
    results = {"rows": rows, "chance": chance, "test_top1": test_top1,
               "num_params": count_params(initial), "train_seconds": result.train_seconds,
               "cpu_seconds": cpu, "seconds": seconds, "devices": describe_devices(),
               "jax_version": jax.__version__, "config": cfg.to_dict(),
               "pca_explained_variance": {k: {"all": v["all_ratio"].tolist(),
                                              "class": v["class_ratio"].tolist()}
                                          for k, v in panels.items()}}
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=str)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(report + "\n")
    results["report"] = report
    return results
