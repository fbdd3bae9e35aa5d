"""Make the int8 and float16 files deployment pipelines hold, from a float32 ONNX model.

The forms are made with the tools pipelines use, so users and the tests meet the same graphs:

* ``dynamic``: ``onnxruntime.quantization.quantize_dynamic`` (DynamicQuantizeLinear on activations,
  ConvInteger / MatMulInteger on int8 weights);
* ``qdq``: ``quantize_static`` in QDQ form (QuantizeLinear/DequantizeLinear pairs around float ops),
  calibrated with MinMax on the given images;
* ``qoperator``: ``quantize_static`` in QOperator form (QLinearConv, QLinearAdd, QGemm...);
* ``fp16``: ``onnxconverter_common.float16.convert_float_to_float16`` with float16 inputs/outputs;
* ``fp16-io32``: the same with ``keep_io_types=True`` (float32 I/O, Cast at the edges);
* ``mixed``: float16 with float32 I/O, the ops of ``op_block_list`` (default the classifier head:
  GlobalAveragePool, Flatten, Gemm, MatMul, Softmax) kept in float32.

The onnxviz metadata (preprocessing, labels) of the source is kept.

    onnxviz convert quantize model.onnx -o model.qdq.onnx --form qdq --images a.png b.png
    onnxviz convert quantize model.onnx -o model.fp16.onnx --form fp16-io32

The int8 forms need only ONNX Runtime; the float16 forms need onnxconverter-common
(``pip install 'onnxviz[quantize]'``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from ._metadata import ConverterError, cli_main, require, save

HELP = "a float32 ONNX model to int8 (dynamic, qdq, qoperator) or float16 (fp16, fp16-io32, mixed)"

FORMS = ("dynamic", "qdq", "qoperator", "fp16", "fp16-io32", "mixed")
#: Ops kept in float32 by ``form="mixed"``.
MIXED_FLOAT32_OPS = ("GlobalAveragePool", "Flatten", "Gemm", "MatMul", "Softmax")


def quantize(model, output, form: str, *, images=None, per_channel: bool = True,
             op_block_list: Sequence[str] | None = None) -> onnx.ModelProto:
    """Write ``model`` in one of :data:`FORMS` to ``output``.

    Args:
        model: a float32 ONNX model (path or ``ModelProto``) with onnxviz metadata or not.
        output: path of the file to write.
        form: one of :data:`FORMS`.
        images: calibration images for ``qdq``/``qoperator`` (arrays, paths, ``skimage:NAME``),
            preprocessed with the model's own preprocessing (:func:`onnxviz.load`).
        per_channel: int8 weights quantized per output channel (else per tensor).
        op_block_list: ops kept in float32 by ``mixed`` (default :data:`MIXED_FLOAT32_OPS`).

    Returns:
        The written model.

    Raises:
        ConverterError: an unknown form, or static quantization without images.
    """
    if form not in FORMS:
        raise ConverterError(f"unknown form {form!r}; use one of {', '.join(FORMS)}")
    src = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    if form.startswith("fp16") or form == "mixed":
        out = _float16(src, form, op_block_list)
    else:
        out = _int8(src, form, images, per_channel)
    del out.metadata_props[:]
    out.metadata_props.extend(src.metadata_props)
    save(out, output)
    return out


def _float16(src: onnx.ModelProto, form: str, op_block_list) -> onnx.ModelProto:
    require(["onnxconverter_common"], "onnxconverter-common (for the float16 forms)", "quantize")
    from onnxconverter_common import float16

    block = None
    if form == "mixed":
        block = list(op_block_list or MIXED_FLOAT32_OPS)
    return float16.convert_float_to_float16(src, keep_io_types=form != "fp16",
                                            op_block_list=block)


def _int8(src: onnx.ModelProto, form: str, images, per_channel: bool) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        out, pre = Path(tmp) / "q.onnx", Path(tmp) / "pre.onnx"
        # onnxruntime's recommended pre-processing: shape inference and graph optimization
        # (folds exporter constants into initializers, fuses BatchNormalization into Conv)
        quant_pre_process(src, str(pre))
        src = onnx.load(str(pre))
        if form == "dynamic":
            quantize_dynamic(src, out, per_channel=per_channel, weight_type=QuantType.QInt8)
        else:
            if images is None or len(images) == 0:
                raise ConverterError("static quantization needs calibration images "
                                     "(images=..., --images FILE ...)")
            fmt = QuantFormat.QDQ if form == "qdq" else QuantFormat.QOperator
            quantize_static(src, out, _Calibration(src, images), quant_format=fmt,
                            per_channel=per_channel, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)
        return onnx.load(str(out))


class _Calibration:
    """``CalibrationDataReader``: the images, preprocessed by onnxviz, one batch of one per call."""

    def __init__(self, src: onnx.ModelProto, images):
        import onnxviz as ov

        m = ov.load(src)
        x = m.preprocess(list(images))
        self._all = [{m.input.name: x[k:k + 1]} for k in range(len(x))]
        self._feeds = iter(self._all)

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self):
        """Start over: onnxruntime's calibrators may read the images more than once (1.32's
        MinMax does; a reader that stayed empty gave ranges from no data at all)."""
        self._feeds = iter(self._all)


def add_arguments(parser) -> None:
    """The options of ``onnxviz convert quantize``."""
    parser.add_argument("model", help="float32 .onnx file")
    parser.add_argument("-o", "--output", required=True, help="output .onnx path")
    parser.add_argument("--form", required=True, choices=FORMS)
    parser.add_argument("--images", nargs="*", default=None,
                        help="calibration images (qdq, qoperator): files or skimage:NAME")
    parser.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor")


def run(args) -> int:
    """Runs ``onnxviz convert quantize`` on parsed arguments; prints the written path."""
    if args.form in ("fp16", "fp16-io32", "mixed"):  # before reading the model
        require(["onnxconverter_common"], "onnxconverter-common (for the float16 forms)", "quantize")
    if not Path(args.model).is_file():
        raise ConverterError(f"no such ONNX file: {args.model}")
    quantize(args.model, args.output, args.form, images=args.images,
             per_channel=not args.per_tensor)
    print(f"wrote {args.output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m onnxviz.convert.quantize``, the same as ``onnxviz convert quantize``."""
    return cli_main("quantize", argv)


if __name__ == "__main__":
    sys.exit(main())
