"""A grid of the built-in shapes data with its boxes, masks and keypoints drawn."""
