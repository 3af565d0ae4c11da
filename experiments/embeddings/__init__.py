"""What deep embeddings encode: class, rotation and scale from pixels and each stage."""
