"""The TorchScript export the detection tests share (the explainers' ``torch_onnx`` lives in
another test folder)."""

from __future__ import annotations


def export_onnx(net, path, size: int, output: str = "out") -> None:
    """``net`` to ONNX: input ``x`` (n, 3, size, size), output ``output``, dynamic batch,
    opset 17."""
    import torch

    torch.onnx.export(net, torch.zeros(1, 3, size, size), str(path), input_names=["x"],
                      output_names=[output], dynamic_axes={"x": {0: "n"}, output: {0: "n"}},
                      opset_version=17, dynamo=False)
