"""Small Flax building blocks shared by the backbones and heads. Each owner module adds its
public names here."""
from vai_jax.nn.conv import ConvBNAct, same_padding
