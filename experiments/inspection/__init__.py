"""Looking inside a trained classifier: filters, activations, probes, pruning, quantisation."""
