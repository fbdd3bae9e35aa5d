"""Bundled models: their build/training scripts and the synthetic shapes data set.

Importable from the repository root (``models.build_efficientnet``, ``models.shapes``) so tests and
benchmarks can rebuild the framework originals of the bundled ONNX files.
"""
