"""2D keypoints: pose heads compared, heatmap resolution, σ calibration and PAF grouping."""
