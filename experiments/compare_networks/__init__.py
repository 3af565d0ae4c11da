"""Backbones side by side: parameters, multiply-accumulates, measured images/s and accuracy."""
