"""Semantic segmentation from full masks, image-level labels, points and an objectness prior."""
