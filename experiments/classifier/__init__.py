"""Image classification with data-parallel training, checkpoints and resumption."""
