"""Read, check and normalize an ONNX model without changing what it computes.

Every way a file can be bad becomes a :class:`ModelError` with a plain message. Normalization
undoes what exporters leave behind: initializers listed as graph inputs (IR 3, MATLAB) are removed
from the inputs; opsets older than :data:`MIN_OPSET` are upgraded with ``onnx.version_converter``
(kept only when the upgraded graph gives the same outputs); shapes are inferred. Making a fixed
batch of 1 symbolic needs ONNX Runtime and lives in :mod:`onnxviz.model.batch`.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import onnx
from onnx import external_data_helper, helper, shape_inference

from .. import limits
from ..errors import ModelError

#: Models below this default-domain opset are upgraded to it when the converter can.
MIN_OPSET = 13


def read(source) -> onnx.ModelProto:
    """Read ``source`` (path, bytes or ``ModelProto``) into a ``ModelProto`` with its external data.

    Raises:
        ModelError: missing, empty, truncated or not-ONNX input, or an unsafe external-data path.
    """
    if isinstance(source, onnx.ModelProto):
        proto = copy.deepcopy(source)
        _refuse_external(proto, None)
        return proto
    if isinstance(source, (bytes, bytearray, memoryview)):
        proto = _parse(bytes(source), "the given bytes")
        _refuse_external(proto, None)
        return proto
    if not isinstance(source, (str, os.PathLike)):
        raise ModelError(f"cannot load a model from a {type(source).__name__}; "
                         "give a path, bytes or an onnx.ModelProto")
    path = limits.regular_file(source, "model file", ModelError,
                               max_bytes=min(2 << 30, limits.memory_budget()))
    data = path.read_bytes()
    try:
        proto = _parse(data, str(path))
    except ModelError as e:
        hint = FRAMEWORK_HINTS.get(path.suffix.lower())
        if hint:
            raise ModelError(f"{path} is a {hint[0]} file, not ONNX; convert it first: "
                             f"{hint[1].format(path=path)}") from None
        raise e
    _refuse_external(proto, path.parent)
    if _external_tensors(proto):
        try:
            external_data_helper.load_external_data_for_model(proto, str(path.parent))
        except (OSError, ValueError) as e:
            raise ModelError(f"{path}: cannot read its external data: {e}") from None
    return proto


#: What to run for a model file of another framework: (framework, command).
FRAMEWORK_HINTS = {
    ".pt": ("PyTorch", "onnxviz convert pytorch FILE.py:build_fn -o model.onnx "
                       "(a function returning the module; see onnxviz convert pytorch --help)"),
    ".pth": ("PyTorch", "onnxviz convert pytorch FILE.py:build_fn -o model.onnx "
                        "(a function returning the module; see onnxviz convert pytorch --help)"),
    ".keras": ("Keras", "onnxviz convert keras {path} -o model.onnx"),
    ".h5": ("Keras (HDF5)", "onnxviz convert keras {path} -o model.onnx"),
    ".pb": ("TensorFlow", "python -m tf2onnx.convert --saved-model DIR --output model.onnx, "
                          "then onnxviz convert metadata model.onnx --labels ... --preprocess ..."),
    ".tflite": ("TensorFlow Lite", "python -m tf2onnx.convert --tflite {path} --output "
                                   "model.onnx, then onnxviz convert metadata model.onnx ..."),
    ".mlmodel": ("Core ML", "convert the source model (PyTorch or Keras) instead: "
                            "onnxviz convert pytorch|keras ..."),
}


def _parse(data: bytes, what: str) -> onnx.ModelProto:
    if not data:
        raise ModelError(f"{what} is empty (0 bytes), not an ONNX model")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception:
        raise ModelError(f"{what} is not a valid ONNX model (truncated or not ONNX: "
                         "the protobuf cannot be parsed)") from None
    if not proto.HasField("graph") or not proto.graph.node or not proto.opset_import:
        raise ModelError(f"{what} is not an ONNX model (no graph, nodes or opset; "
                         "truncated or another file type?)")
    return proto


def _external_tensors(proto: onnx.ModelProto) -> list[onnx.TensorProto]:
    return [t for t in external_data_helper._get_all_tensors(proto)
            if external_data_helper.uses_external_data(t)]


def _refuse_external(proto: onnx.ModelProto, base: Path | None) -> None:
    """Refuse external-data locations that could read outside the model's own folder."""
    for tensor in _external_tensors(proto):
        info = {e.key: e.value for e in tensor.external_data}
        loc = info.get("location", "")
        if base is None:
            raise ModelError(f"tensor {tensor.name!r} stores its data in an external file "
                             f"({loc!r}); load the model from its path, not from bytes")
        if not loc or "\0" in loc or _unsafe(loc):
            raise ModelError(f"refusing external data location {loc!r} of tensor "
                             f"{tensor.name!r}: it must be a relative path inside the model's "
                             "folder (no absolute path, no '..')")
        try:
            target = (base / loc).resolve()
        except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, a name too long
            raise ModelError(f"cannot resolve external data location {loc!r} of tensor "
                             f"{tensor.name!r}: {e}") from None
        if not target.is_relative_to(base.resolve()):
            raise ModelError(f"refusing external data location {loc!r} of tensor "
                             f"{tensor.name!r}: it resolves outside the model's folder")
        if not os.path.lexists(target):
            raise ModelError(f"external data file {loc!r} of tensor {tensor.name!r} is missing "
                             f"next to the model (looked in {base})")
        size = limits.regular_file(target, f"external data file of tensor {tensor.name!r}",
                                   ModelError).stat().st_size
        _check_extent(tensor, info, size, loc)


def _check_extent(tensor, info: dict, size: int, loc: str) -> None:
    """The declared tensor fits the memory budget and lies inside its external file."""
    try:
        offset, length = int(info.get("offset", 0)), info.get("length")
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (ValueError, TypeError, KeyError):
        raise ModelError(f"tensor {tensor.name!r} has malformed external data fields") from None
    need = int(np.prod(list(tensor.dims), dtype=np.float64)) * itemsize
    limits.check_memory(need, f"tensor {tensor.name!r} (shape {list(tensor.dims)})")
    end = offset + (int(length) if length is not None else need)
    if offset < 0 or end > size:
        raise ModelError(f"tensor {tensor.name!r} declares bytes {offset}..{end} of {loc!r}, "
                         f"which has {size} bytes (truncated or wrong offsets)")


def _unsafe(loc: str) -> bool:
    for pure in (PurePosixPath(loc), PureWindowsPath(loc)):
        if pure.is_absolute() or pure.anchor or ".." in pure.parts:
            return True
    return False


def check(proto: onnx.ModelProto) -> None:
    """``onnx.checker`` with a plain error; operators that are not ONNX are named first."""
    _refuse_unknown_ops(proto)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "invalid"
        raise ModelError(f"the model is not valid ONNX: {first}") from None


def _refuse_unknown_ops(proto: onnx.ModelProto) -> None:
    counts: dict[str, int] = {}
    for node in proto.graph.node:
        if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    if not counts:
        return
    ops = ", ".join(f"{op} (x{n})" for op, n in sorted(counts.items()))
    msg = f"the model has nodes that are not ONNX operators: {ops}"
    if proto.producer_name == "tf2onnx":
        msg += ("; tf2onnx left TensorFlow ops it could not convert. Keras's TensorFlow backend runs "
                "grouped convolutions (ConvNeXt) as an XLA function (StatefulPartitionedCall) and "
                "exact GELU with Erfc: export the Keras model with onnxviz's converter instead "
                "(onnxviz convert keras model.keras -o model.onnx), which converts both")
    raise ModelError(msg)


def default_opset(proto: onnx.ModelProto) -> int:
    """The default-domain (ai.onnx) opset version."""
    for o in proto.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 0


def remove_initializer_inputs(proto: onnx.ModelProto) -> int:
    """Drop graph inputs that are initializers (IR < 4 lists every weight as an input).

    Returns:
        How many inputs were removed. The IR version is raised to 4 when needed, since IR 3 requires
        every initializer to be an input.
    """
    inits = {t.name for t in proto.graph.initializer}
    keep = [i for i in proto.graph.input if i.name not in inits]
    removed = len(proto.graph.input) - len(keep)
    if removed:
        del proto.graph.input[:]
        proto.graph.input.extend(keep)
        proto.ir_version = max(proto.ir_version, 4)
    return removed


def remove_unused_inputs(proto: onnx.ModelProto) -> list[str]:
    """Drop graph inputs that no node reads, keeping at least one input.

    tf2onnx lists every tensor a ``tf.function`` captures as a graph input, even after freezing
    has copied its value into the graph as a constant: Keras's ``Normalization`` layer (the
    ``include_preprocessing`` of EfficientNet, EfficientNetV2 and ConvNeXt) leaves its mean and
    variance behind as two such inputs, which nothing reads. An input that no node (nor subgraph)
    reads and that is not a graph output cannot change any output, so removing it is exact.

    Returns:
        The names of the removed inputs.
    """
    read = _names_read(proto.graph) | {o.name for o in proto.graph.output}
    unused = [i.name for i in proto.graph.input if i.name not in read]
    if unused and len(unused) < len(proto.graph.input):
        keep = [i for i in proto.graph.input if i.name in read]
        del proto.graph.input[:]
        proto.graph.input.extend(keep)
        return unused
    return []


def refuse_lost_constants(proto: onnx.ModelProto, image: str | None) -> None:
    """Refuse a tf2onnx file whose extra inputs are constants it exported without their values.

    tf2onnx makes every tensor a ``tf.function`` captures a graph input, and where a node still
    reads it (the mean of ConvNeXt's ``Normalization`` layer after ``model.export``) the value is
    nowhere in the file, so no one can supply it. Such inputs have a fully static shape, unlike a
    batch of images.

    Args:
        proto: the model, after :func:`remove_unused_inputs`.
        image: the image input's name, or None for the first input.

    Raises:
        ModelError: naming the inputs and how to export the model instead.
    """
    if proto.producer_name != "tf2onnx":
        return
    inits = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    image = image or (inputs[0].name if inputs else None)
    lost = [i.name for i in inputs if i.name != image and _static(i)]
    if lost:
        raise ModelError(
            f"the model reads {len(lost)} graph input(s) besides the image whose values are not in "
            f"the file ({', '.join(lost)}): tf2onnx exports tensors that a tf.function captures "
            "(such as a Keras Normalization layer's mean and variance, in keras.applications "
            "EfficientNet, EfficientNetV2 and ConvNeXt) as inputs without their values. Export the "
            "Keras model with onnxviz's converter instead (onnxviz convert keras model.keras -o "
            "model.onnx), which keeps them as constants")


def _static(vi: onnx.ValueInfoProto) -> bool:
    t = vi.type.tensor_type
    return t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim)


def _names_read(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name a node of ``graph`` or of its subgraphs takes as an input."""
    names = set()
    for node in graph.node:
        names.update(node.input)
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                names |= _names_read(sub)
    names.discard("")
    return names


def infer_shapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Shape inference (non-strict): returns the model with ``value_info`` filled where possible."""
    try:
        return shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
    except Exception as e:  # inference is a convenience: never fatal
        warnings.warn(f"ONNX shape inference failed ({str(e).splitlines()[0][:200]}); "
                      "layer shapes may be unknown", stacklevel=4)
        return proto


def upgrade_opset(proto: onnx.ModelProto, run_outputs) -> tuple[onnx.ModelProto, bool]:
    """Upgrade an old opset to :data:`MIN_OPSET`, keeping it only if the outputs are unchanged.

    Args:
        proto: the model (already without initializer inputs).
        run_outputs: ``fn(proto) -> list[np.ndarray] | None`` running a model on a fixed probe
            input (``None`` when it cannot run).

    Returns:
        (model, upgraded): the upgraded model when conversion worked and gives the same outputs
        (max abs difference <= 1e-5 * (1 + max |output|)), else the original.
    """
    if default_opset(proto) >= MIN_OPSET:
        return proto, False
    try:
        from onnx import version_converter

        new = version_converter.convert_version(proto, MIN_OPSET)
        new.ir_version = max(new.ir_version, helper.find_min_ir_version_for(
            list(new.opset_import)))
        onnx.checker.check_model(new)
    except Exception:
        return proto, False
    if not same_outputs(run_outputs(proto), run_outputs(new)):
        return proto, False
    return new, True


def same_outputs(want, got) -> bool:
    """Whether two runs' outputs agree: same count and shapes, and every value within
    ``1e-5 * (1 + max |want|)`` (NaN equal to NaN). ``None`` (a run that failed) never agrees."""
    if want is None or got is None or len(want) != len(got):
        return False
    for a, b in zip(want, got):
        if a.shape != b.shape:
            return False
        tol = 1e-5 * (1.0 + float(np.max(np.abs(a), initial=0.0)))
        if not np.allclose(a, b, rtol=0, atol=tol, equal_nan=True):
            return False
    return True


def make_batch_symbolic(proto: onnx.ModelProto, input_name: str,
                        run) -> tuple[onnx.ModelProto, bool]:
    """Turn a fixed batch size of 1 into a symbolic one when the graph allows it.

    The rewritten graph is kept only when its batch-2 outputs equal two batch-1 outputs of the
    original (max abs difference <= 1e-5 * (1 + max |output|)); otherwise the original is returned
    and the caller feeds one image at a time.

    Args:
        proto: the model.
        input_name: the image input.
        run: ``fn(proto, n) -> list[np.ndarray] | None`` running a model on the first ``n``
            samples of a fixed probe batch (``None`` when it cannot run).

    Returns:
        (model, fixed_batch).
    """
    inp = next(i for i in proto.graph.input if i.name == input_name)
    d0 = inp.type.tensor_type.shape.dim[0]
    if not d0.HasField("dim_value"):
        return proto, False
    if d0.dim_value != 1:
        return proto, True
    new = copy.deepcopy(proto)
    for vi in list(new.graph.input) + list(new.graph.output):
        shape = vi.type.tensor_type.shape
        if vi.name == input_name or (len(shape.dim) and shape.dim[0].dim_value == 1):
            if len(shape.dim):
                shape.dim[0].Clear()
                shape.dim[0].dim_param = "N"
    del new.graph.value_info[:]
    first, second = run(proto, 1), run(proto, (1, 2))
    if first is None or second is None or len(first) != len(second):
        return proto, True
    singles = [np.concatenate(pair, axis=0) for pair in zip(first, second)]
    if not same_outputs(singles, run(new, 2)):
        return proto, True
    return new, False
