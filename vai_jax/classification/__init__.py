"""Image classification: the training loss (:mod:`losses`) and top-k metrics (:mod:`metrics`).
Classifiers themselves are the backbones of :mod:`vai_jax.backbones`."""
from vai_jax.classification.losses import softmax_cross_entropy
from vai_jax.classification.metrics import topk_accuracy, topk_correct, topk_counts

__all__ = ["softmax_cross_entropy", "topk_accuracy", "topk_correct", "topk_counts"]
