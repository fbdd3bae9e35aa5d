"""PyTorch -> ONNX for onnxviz: dynamic batch, readable node names, onnxviz metadata.

Usage::

    onnxviz convert pytorch mypkg.nets:make_net -o net.onnx --input-size 224 224 \\
        --preprocess imagenet --labels classes.txt
    onnxviz convert pytorch path/to/file.py:make_net -o net.onnx --dynamo

The default exporter is TorchScript (``torch.onnx.export(..., dynamo=False)``): it names nodes
after module paths (``/layer1/layer1.0/conv1/Conv``), which become the layer names onnxviz shows.
``--dynamo`` uses the ``torch.export`` based exporter instead. PyTorch is imported only when a
model is converted (``pip install 'onnxviz[pytorch]'``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import onnx

from ._fold import fold_constants
from ._metadata import ConverterError, cli_main, require, save, write_metadata

if TYPE_CHECKING:
    import torch

HELP = "a PyTorch nn.Module (module:factory or file.py:factory) to ONNX"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
_FACTORY_NAMES = ("model", "get_model", "build_model", "create_model")
#: The opsets ``--opset`` takes (onnxviz reads opset 7 and later; torch exports 9 and later).
OPSETS = (9, 23)


def convert(
    module: torch.nn.Module,
    path: str | Path,
    *,
    input_size: tuple[int, int] = (224, 224),
    channels: int = 3,
    preprocess: str | dict | None = "imagenet",
    labels: Sequence[str] | str | Path | None = None,
    dynamo: bool = False,
    opset: int = 17,
    fold: bool = True,
    task: str | None = None,
    layout: str | None = None,
) -> onnx.ModelProto:
    """Exports an image classifier to ``path`` with a dynamic batch axis and onnxviz metadata.

    Args:
        module: the network; put in eval mode here (dropout and batch norm frozen).
        path: where to write the ``.onnx`` file (weights inline).
        input_size: (H, W) of the NCHW input.
        channels: input channels.
        preprocess: what the network expects from RGB pixels in [0, 255]: a preset name
            (``imagenet``, ``tf``, ``caffe``, ``unit``, ``raw``), a dict/JSON with
            ``mean``/``std``/``scale``/``channel_order``, or None to write nothing.
        labels: class names (list, or a text file with one per line), or None.
        dynamo: use the ``torch.export`` based exporter instead of TorchScript.
        opset: ONNX opset to export to.
        fold: evaluate constant-only subgraphs (padding and shape bookkeeping the exporters
            leave behind) into initializers; results are unchanged.
        task: ``classify``, ``detect`` or ``segment``, written to the metadata so that
            ``onnxviz.load`` needs no ``task=`` (None: let it tell from the outputs).
        layout: a detector's output layout (``yolov8``, ``yolov5``), written likewise.

    Returns:
        The saved model.
    """
    torch = _torch()
    module = module.eval()
    example = torch.zeros(2, channels, *input_size)
    with torch.no_grad():
        proto = _export_dynamo(module, example, opset) if dynamo else _export_torchscript(module, example, opset)
    if fold:
        proto = fold_constants(proto)
    write_metadata(proto, preprocess=preprocess, labels=labels, task=task, layout=layout)
    onnx.checker.check_model(proto)
    save(proto, path)
    return proto


def _torch():
    require(["torch"], "PyTorch", "pytorch")
    import torch

    return torch


def _export_torchscript(module: torch.nn.Module, example: torch.Tensor, opset: int) -> onnx.ModelProto:
    torch = _torch()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.onnx"
        torch.onnx.export(
            module,
            (example,),
            str(out),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )
        return onnx.load(str(out))


def _export_dynamo(module: torch.nn.Module, example: torch.Tensor, opset: int) -> onnx.ModelProto:
    require(["onnxscript"], "onnxscript (needed by --dynamo)", "pytorch")
    torch = _torch()
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        module,
        (example,),
        dynamo=True,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch},),
        optimize=True,
    )
    return program.model_proto


def load_spec(spec: str) -> torch.nn.Module:
    """Builds the module a command-line SPEC names.

    Args:
        spec: ``package.module:factory`` or ``path/to/file.py:factory`` where ``factory`` is a
            callable returning an ``nn.Module`` (or a module instance); a bare ``package.module``
            or ``file.py`` uses the first of ``model``, ``get_model``, ``build_model``,
            ``create_model`` it defines.

    Returns:
        The module, in eval mode.
    """
    torch = _torch()
    target, _, attr = spec.partition(":")
    namespace = _import_target(target)
    names = [attr] if attr else [n for n in _FACTORY_NAMES if hasattr(namespace, n)][:1]
    if not names or not hasattr(namespace, names[0]):
        wanted = attr or " / ".join(_FACTORY_NAMES)
        raise ConverterError(f"{target!r} has no attribute {wanted}; pass SPEC as module:factory")
    obj = getattr(namespace, names[0])
    module = obj() if callable(obj) and not isinstance(obj, torch.nn.Module) else obj
    if not isinstance(module, torch.nn.Module):
        raise ConverterError(f"{spec!r} returned {type(module).__name__}, not a torch.nn.Module")
    return module.eval()


def _import_target(target: str):
    if target.endswith(".py"):
        file = Path(target)
        if not file.is_file():
            raise ConverterError(f"no such file: {target}")
        spec = importlib.util.spec_from_file_location(file.stem, file)
        mod = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(file.stem, mod)
        spec.loader.exec_module(mod)
        return mod
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        raise ConverterError(f"cannot import {target!r} ({exc}); run from the folder that contains it") from exc


def add_arguments(parser) -> None:
    """The options of ``onnxviz convert pytorch``."""
    parser.add_argument("spec", metavar="SPEC",
                        help="package.module:factory or file.py:factory returning an nn.Module")
    parser.add_argument("-o", "--output", required=True, help="output .onnx path")
    parser.add_argument("--input-size", nargs=2, type=int, default=(224, 224), metavar=("H", "W"),
                        help="height and width of the example input the model is traced with "
                             "(default 224 224)")
    parser.add_argument("--channels", type=int, default=3,
                        help="input channels: 3 (RGB), 1 (grey) or 4 (RGBA) (default 3)")
    parser.add_argument("--opset", type=int, default=17,
                        help=f"ONNX opset to export to, {OPSETS[0]}..{OPSETS[1]} (default 17)")
    parser.add_argument("--dynamo", action="store_true", help="use the torch.export based exporter")
    parser.add_argument("--preprocess", default="imagenet",
                        help="preset name (imagenet, tf, caffe, unit, raw) or JSON; default imagenet")
    parser.add_argument("--no-preprocess", action="store_true",
                        help="write no preprocessing metadata")
    parser.add_argument("--labels", help="text file, one class name per line (or a JSON list), "
                                         "or 'imagenet'")


def check_arguments(*, output, input_size, channels: int, opset: int, preprocess,
                    labels) -> tuple:
    """Checks what ``onnxviz convert pytorch`` was given before the slow work (importing torch,
    building the module, exporting): the input size, channels, opset, preprocessing, labels and
    the output folder. Returns the (preprocess spec, label list) to write."""
    from ._metadata import preprocess_spec, read_labels

    if len(input_size) != 2 or any(int(v) < 1 or int(v) > 16384 for v in input_size):
        raise ConverterError(f"--input-size takes H W, each in 1..16384, got {tuple(input_size)}")
    if channels not in (1, 3, 4):
        raise ConverterError(f"--channels must be 1, 3 or 4, got {channels}")
    if not OPSETS[0] <= opset <= OPSETS[1]:
        raise ConverterError(f"--opset must be in {OPSETS[0]}..{OPSETS[1]}, got {opset}")
    spec, names = preprocess_spec(preprocess), read_labels(labels)
    folder = Path(output).resolve().parent
    if folder.exists() and not folder.is_dir():
        raise ConverterError(f"cannot write {output}: {folder} is not a folder")
    return spec, names


def run(args) -> int:
    """Runs ``onnxviz convert pytorch`` on parsed arguments; prints the written path."""
    preprocess, labels = check_arguments(
        output=args.output, input_size=args.input_size, channels=args.channels, opset=args.opset,
        preprocess=None if args.no_preprocess else args.preprocess, labels=args.labels)
    _torch()  # the install hint comes before the user's module fails to import torch
    convert(load_spec(args.spec), args.output, input_size=tuple(args.input_size),
            channels=args.channels, preprocess=preprocess, labels=labels, dynamo=args.dynamo,
            opset=args.opset)
    print(f"wrote {args.output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m onnxviz.convert.pytorch``, the same as ``onnxviz convert pytorch``."""
    return cli_main("pytorch", argv)


if __name__ == "__main__":
    sys.exit(main())
