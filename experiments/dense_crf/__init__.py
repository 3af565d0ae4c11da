"""Dense CRF on segmentation networks: post-processing vs CRF-as-RNN, with boundary metrics."""
