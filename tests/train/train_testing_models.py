"""Tiny Flax models for the training tests (BatchNorm first so its statistics are checkable)."""
import flax.linen as nn
import jax.numpy as jnp


class TinyBNNet(nn.Module):
    """BN on the input (running stats = input statistics), conv, BN, pool, dense."""

    num_classes: int = 3
    axis_name: str | None = None
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9,
                                         axis_name=self.axis_name, dtype=self.dtype, name=name)
        x = norm("bn_in")(x.astype(self.dtype))
        x = nn.Conv(4, (3, 3), dtype=self.dtype, name="conv")(x)
        x = nn.relu(norm("bn")(x))
        x = jnp.mean(x, axis=(1, 2))
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
        return logits, {"pool": x}


class TinyMLP(nn.Module):
    """No BatchNorm: per-example losses are independent (for accumulation tests)."""

    num_classes: int = 3
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(8, name="hidden")(x))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="head")(x), {}
