"""Gradient rules, one module per op family; importing this package registers them all."""

from . import activations, elementwise, nn, norm, pooling, quant, reduce, resize, shape  # noqa: F401
