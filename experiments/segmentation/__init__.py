"""Semantic segmentation: FCN-32s/16s/8s, DeepLab v3 and ESPNet at an equal budget."""
