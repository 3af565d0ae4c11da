"""Fine-tuning a converted ResNet with the library's training step: the converted backbone, a
new 6-class head, a few steps of the train step on the built-in shapes data; the loss falls."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from vai_jax import weights
from vai_jax.backbones.base import IMAGENET_MEAN, IMAGENET_STD
from vai_jax.classification.losses import softmax_cross_entropy
from vai_jax.data.shapes import NUM_CLASSES, ShapesDataset
from vai_jax.train.optim import make_optimizer
from vai_jax.train.state import TrainState
from vai_jax.train.step import make_train_step
from tests.weights import parity


def imagenet_preprocess(batch, rng, *, train):
    del rng, train
    x = batch["image"].astype(jnp.float32) / 255.0
    return (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)


def test_finetune_converted_resnet18_on_shapes():
    manifest, _ = parity.read_reference("resnet18")
    state = parity.random_state_dict(manifest, parity.seed_of("resnet18"))
    _, backbone = weights.from_torchvision("resnet18", state, num_classes=0)
    model = weights.model_for("resnet18", num_classes=NUM_CLASSES)
    # The converted backbone and a new zero-initialised head.
    head = {"kernel": jnp.zeros((512, NUM_CLASSES)), "bias": jnp.zeros((NUM_CLASSES,))}
    variables = {"params": {**backbone["params"], "fc": head},
                 "batch_stats": backbone["batch_stats"]}

    # One batch of 8 images, 4 steps: the loss falls to under half of log(6).
    data = ShapesDataset("classification", split="train", num_examples=8, image_size=32,
                         seed=0).materialise(("image", "label")).arrays
    batch = {"image": jnp.asarray(data["image"]), "label": jnp.asarray(data["label"])}
    train_state = TrainState.create(apply_fn=model.apply, variables=variables,
                                    tx=make_optimizer("adamw", learning_rate=1e-3),
                                    rng=jax.random.PRNGKey(0))
    step = jax.jit(make_train_step(functools.partial(softmax_cross_entropy),
                                   preprocess_fn=imagenet_preprocess))
    losses = []
    for _ in range(4):
        train_state, metrics = step(train_state, batch)
        losses.append(float(metrics["loss"]))
    assert np.isclose(losses[0], np.log(NUM_CLASSES), atol=1e-5)  # zero head: uniform
    assert losses[-1] < 0.8 * losses[0], losses
    # The backbone moved, and the BatchNorm statistics were updated from the batches.
    moved = train_state.params["stage1"]["block1"]["conv1"]["kernel"]
    assert not np.allclose(moved, variables["params"]["stage1"]["block1"]["conv1"]["kernel"])
    assert not np.allclose(train_state.batch_stats["stem"]["bn"]["mean"],
                           variables["batch_stats"]["stem"]["bn"]["mean"])
