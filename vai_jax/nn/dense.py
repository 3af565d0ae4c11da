"""DenseNet blocks (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017), in
torchvision's layout (DenseNet-BC: 1×1 bottleneck in each layer, compression in transitions)."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array, check_int
from vai_jax.nn.norm import batch_norm

_KERNEL_INIT = nn.initializers.variance_scaling(2.0, "fan_in", "normal")  # torchvision: kaiming_normal_


class DenseLayer(nn.Module):
    """``BN-ReLU-conv1×1(bn_size·growth_rate)-BN-ReLU-conv3×3(growth_rate)`` [+ dropout].

    Returns only the ``growth_rate`` new channels ``[B, H, W, growth_rate]``; the block
    concatenates them. Parameter names ``bn1``, ``conv1``, ``bn2``, ``conv2``. Dropout (``drop_rate``
    > 0) uses the ``'dropout'`` rng only when ``train``.
    """

    growth_rate: int
    bn_size: int = 4
    drop_rate: float = 0.0
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        check_int(self.growth_rate, "growth_rate", ge=1)
        check_int(self.bn_size, "bn_size", ge=1)
        norm = batch_norm(train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                          axis_name=self.bn_axis_name)
        conv = lambda f, k, name: nn.Conv(  # noqa: E731
            f, (k, k), padding=((k // 2, k // 2),) * 2, use_bias=False, dtype=self.dtype,
            param_dtype=self.param_dtype, kernel_init=_KERNEL_INIT, name=name)
        h = conv(self.bn_size * self.growth_rate, 1, "conv1")(nn.relu(norm(name="bn1")(x)))
        h = conv(self.growth_rate, 3, "conv2")(nn.relu(norm(name="bn2")(h)))
        if self.drop_rate > 0:
            h = nn.Dropout(self.drop_rate, deterministic=not train)(h)
        return h


class DenseBlock(nn.Module):
    """``num_layers`` :class:`DenseLayer` s (``layer1`` …), each reading the concatenation of the
    block input and all earlier layers' outputs.

    Input ``[B, H, W, C]`` → ``[B, H, W, C + num_layers · growth_rate]`` (input channels first,
    then each layer's ``growth_rate`` channels in order).
    """

    num_layers: int
    growth_rate: int
    bn_size: int = 4
    drop_rate: float = 0.0
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
        check_int(self.num_layers, "num_layers", ge=1)
        for i in range(self.num_layers):
            new = DenseLayer(self.growth_rate, self.bn_size, self.drop_rate, dtype=self.dtype,
                             param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name,
                             name=f"layer{i + 1}")(x, train=train)
            x = jnp.concatenate([x, new.astype(x.dtype)], axis=-1)
        return x


class Transition(nn.Module):
    """``BN-ReLU-conv1×1(features)-avgpool 2×2/2`` between dense blocks (floor for odd sizes).

    ``[B, H, W, C]`` → ``[B, H // 2, W // 2, features]``. Parameter names ``bn``, ``conv``.
    """

    features: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
        check_int(self.features, "features", ge=1)
        x = batch_norm(train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                       axis_name=self.bn_axis_name)(name="bn")(x)
        x = nn.Conv(self.features, (1, 1), use_bias=False, dtype=self.dtype,
                    param_dtype=self.param_dtype, kernel_init=_KERNEL_INIT, name="conv")(nn.relu(x))
        return nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")
