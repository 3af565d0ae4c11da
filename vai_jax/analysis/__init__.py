"""vai_jax.analysis: parameter and multiply-accumulate counts, and looking inside networks:
layers by name, receptive fields, filters, activation maximisation, top patches, linear probes,
pruning, quantisation, transfer, BagNet evidence."""
from vai_jax.analysis.summary import LayerRow, Summary, count_params, human, summarize
from vai_jax.analysis.activation_max import AscentConfig, maximise_activation
from vai_jax.analysis.bagnet_evidence import class_maps, evidence_maps
from vai_jax.analysis.filters import conv_kernels, filter_images, first_layer_kernel
from vai_jax.analysis.layers import LOGITS, layer_outputs, layer_shapes
from vai_jax.analysis.patches import TopPatches, top_patches
from vai_jax.analysis.plain_cnn import PlainCNN
from vai_jax.analysis.probing import ProbeResult, probe_layers, probe_table, train_linear_probe
from vai_jax.analysis.pruning import (activation_scores, prune_plain_cnn, prune_resnet,
                                      prune_specs)
from vai_jax.analysis.quantization import kmeans_1d, model_size_bytes, quantise_params
from vai_jax.analysis.receptive_field import (ReceptiveField, gradient_support,
                                              layer_receptive_field, receptive_field)
from vai_jax.analysis.transfer import freeze, restore_by_name, trainable_labels

__all__ = [
    "LayerRow", "Summary", "count_params", "human", "summarize",
    "AscentConfig", "maximise_activation", "class_maps", "evidence_maps", "conv_kernels",
    "filter_images", "first_layer_kernel", "LOGITS", "layer_outputs", "layer_shapes",
    "TopPatches", "top_patches", "PlainCNN", "ProbeResult", "probe_layers", "probe_table",
    "train_linear_probe", "activation_scores", "prune_plain_cnn",
    "prune_resnet", "prune_specs", "kmeans_1d", "model_size_bytes",
    "quantise_params", "ReceptiveField", "gradient_support", "layer_receptive_field",
    "receptive_field", "freeze", "restore_by_name", "trainable_labels",
]
