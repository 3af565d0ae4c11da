"""Small Flax building blocks shared by the backbones and heads. Each owner module adds its
public names here."""
from vai_jax.nn.conv import ConvBNAct, same_padding
from vai_jax.nn.squeeze_excite import SqueezeExcite
from vai_jax.nn.residual import BasicUnit, BottleneckUnit, padding_shortcut
from vai_jax.nn.dense import DenseBlock, DenseLayer, Transition
from vai_jax.nn.highway import HighwayConv, HighwayDense, highway_combine
from vai_jax.nn.spp import (SpatialPyramidPooling, adaptive_bin_edges, adaptive_pool_2d,
                            max_pool_2d, pool_output_size, spatial_pyramid_pool)
from vai_jax.nn.shuffle import ChannelShuffle, channel_shuffle
from vai_jax.nn.separable import DepthwiseSeparableConv, GroupedConv, SpatiallySeparableConv
from vai_jax.nn.fire import Fire
from vai_jax.nn.inception import InceptionModule
from vai_jax.nn.dilated import DilatedConvStack, ESPBlock, effective_kernel_size, receptive_field
from vai_jax.nn.lrn import LocalResponseNorm, local_response_norm
from vai_jax.nn.transposed import TransposedConv, bilinear_init, bilinear_upsampler
from vai_jax.nn.fpn import FPN
from vai_jax.nn.inverted_residual import InvertedResidual, make_divisible
from vai_jax.nn.crf import ChainCRF, ConditionalNeuralField, CRFAsRNN, DenseCRF
