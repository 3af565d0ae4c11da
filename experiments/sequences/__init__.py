"""Structured prediction over time: per-frame CNN, chain, latent-dynamic and hidden CRFs."""
