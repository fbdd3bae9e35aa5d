"""The two wire formats: KServe's v1 (``instances``) and the Open Inference Protocol (v2 tensors).

Requests are parsed into images and parameters here, and results are written back; nothing here
runs a model. A malformed body is a :class:`~onnxviz.serve.errors.RequestError` (400) that says
which field is wrong.
"""

from __future__ import annotations

import base64
import math

import numpy as np

from ..errors import ImageError
from ..explainers.base import not_drawn
from ..results import EXPLANATION_FIELDS, Record
from . import binary
from .errors import RequestError, TooLarge
from .images import image_of, pixels_of

#: v2 tensor datatypes accepted for pixels, with their numpy types.
_V2_NUMERIC = {"UINT8": np.uint8, "UINT16": np.uint16, "INT8": np.int8, "INT16": np.int16,
               "INT32": np.int32, "INT64": np.int64, "FP16": np.float16, "FP32": np.float32,
               "FP64": np.float64, "BOOL": np.bool_}
#: v2 outputs when a request names none (the PNGs only when asked for).
V2_DEFAULT_OUTPUTS = ("heatmap", "target", "label", "score")
V2_OUTPUTS = (*V2_DEFAULT_OUTPUTS, "heatmap_png", "overlay_png")


def instances_of(body: dict) -> list:
    """v1: the non-empty ``instances`` list (``inputs`` is accepted as its other name)."""
    inst = body.get("instances", body.get("inputs"))
    if not isinstance(inst, list) or not inst:
        raise RequestError("the body needs 'instances': a non-empty list of images "
                           "(base64 image files or nested arrays of pixels)")
    return inst


def decode_instances(instances: list, max_pixels: int) -> list[np.ndarray]:
    """Every v1 instance as an RGB image (the first bad one raises, naming its index)."""
    return [image_of(x, max_pixels, f"instances[{i}]") for i, x in enumerate(instances)]


def v1_explanation(result, with_heatmap: bool, task: str = "classify") -> dict:
    """One explanation in a v1 ``explanations`` list: its record (no image, no files: with a
    detector's ``box``, x0, y0, x1, y1 in the image's pixels, or a segmenter's ``region``), the
    PNGs asked for, the heatmap's values when asked for. A detector's or a segmenter's (one per
    box or region) also says its ``instance`` (the request's image)."""
    e = result.explanation
    out = Record.of(None, e).to_dict(EXPLANATION_FIELDS)
    if task != "classify":
        out["instance"] = result.instance
    out.update(result.pngs)
    if with_heatmap:
        out["heatmap"] = np.asarray(e.heatmap, np.float32).tolist()
    return out


def v1_predictions(rows: list) -> list[list[dict]]:
    """Per image, its top classes (index, label, score, probability); a detector's detections
    (``box`` x0, y0, x1, y1 in the image's pixels, ``label``, ``class``, ``score``, best first);
    a segmenter's regions (``label``, ``class``, ``area``: a share of the image, largest
    first)."""
    return [[{"index": p.index, "label": p.label, "score": p.score,
              "probability": p.probability} for p in row] if isinstance(row, list)
            else row.records() for row in rows]


def class_maps(rows: list) -> list[str]:
    """A segmenter's class maps as base64 PNGs, one per image at its size: each pixel's value is
    its class index (8-bit gray; 16-bit past 255 classes)."""
    import base64

    import cv2

    out = []
    for row in rows:
        m = row.class_map
        ok, buf = cv2.imencode(".png", m.astype(np.uint8 if m.max(initial=0) < 256 else np.uint16))
        out.append(base64.b64encode(buf.tobytes()).decode("ascii"))
    return out


def v2_tensor(body: dict) -> dict:
    """The request's image tensor: the input named ``image``, else the only input."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, dict) for t in inputs):
        raise RequestError("the body needs 'inputs': a list of tensors "
                           "({name, shape, datatype, data})")
    named = [t for t in inputs if t.get("name") == "image"]
    if len(inputs) > 1 and len(named) != 1:
        raise RequestError("several inputs given: name the image tensor 'image'")
    return named[0] if named else inputs[0]


def v2_images(tensor: dict, max_pixels: int) -> list[np.ndarray]:
    """A v2 tensor as images: BYTES [N] of base64 image files, or pixels [N, H, W, C] / [H, W, C]
    (C = 3 or 4, or [N, H, W] gray) of a numeric datatype."""
    dtype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise RequestError("input 'shape' must be a list of integers >= 0")
    if isinstance(data, binary.Raw):  # the binary tensor data extension
        flat = binary.elements(data, dtype, shape)
    elif not isinstance(data, list):
        raise RequestError("input 'data' must be a list")
    else:
        flat = _flatten(data)
    if len(flat) != math.prod(shape):
        raise RequestError(f"input 'data' holds {len(flat)} values but its shape {shape} "
                           f"needs {math.prod(shape)}")
    if dtype == "BYTES":
        if len(shape) != 1 or not shape[0]:
            raise RequestError(f"BYTES images need shape [N] with N >= 1, got {shape}")
        return [image_of(x, max_pixels, f"inputs.data[{i}]") if isinstance(x, (str, bytes))
                else _not_text(i) for i, x in enumerate(flat)]
    if dtype not in _V2_NUMERIC:
        raise RequestError(f"input datatype {dtype!r} is not an image; use BYTES (base64 files) "
                           f"or one of {', '.join(_V2_NUMERIC)}")
    if len(shape) == 3 and shape[-1] in (3, 4):
        shape = [1, *shape]
    if len(shape) != 4 and len(shape) != 3:
        raise RequestError(f"pixel tensors are [N, H, W, C], [H, W, C] or [N, H, W]; got {shape}")
    if shape[0] < 1:
        raise RequestError("no images given (N = 0)")
    if shape[1] * shape[2] > max_pixels:
        raise TooLarge(f"{shape[2]}x{shape[1]} = {shape[1] * shape[2]} pixels is past this "
                       f"server's limit of {max_pixels} (onnxviz serve --max-pixels)")
    try:
        arr = np.asarray(flat, dtype=_V2_NUMERIC[dtype]).reshape(shape)
    except (ValueError, TypeError, OverflowError) as e:
        raise ImageError(f"input data is not {dtype} ({e})") from None
    return [pixels_of(a, max_pixels, f"inputs image {i}") for i, a in enumerate(arr)]


def v2_outputs(body: dict) -> tuple[str, ...]:
    """The output names asked for (``outputs: [{name}, ...]``), default heatmap, target, label,
    score."""
    asked = body.get("outputs")
    if asked is None:
        return V2_DEFAULT_OUTPUTS
    if not isinstance(asked, list) or not all(isinstance(o, dict) and "name" in o for o in asked):
        raise RequestError("'outputs' must be a list of {\"name\": ...} objects")
    names = [o["name"] for o in asked]
    bad = [n for n in names if n not in V2_OUTPUTS]
    if bad:
        raise RequestError(f"unknown output {bad[0]!r}; choose from: {', '.join(V2_OUTPUTS)}")
    return tuple(dict.fromkeys(names))


def v2_response(name: str, request_id, method: str, results: list, names,
                binary_names=frozenset()) -> dict:
    """The v2 inference response: one tensor per output name over the N images (the numbers are
    the records' fields). Outputs in ``binary_names`` carry :class:`~onnxviz.serve.binary.Raw`
    data (the PNGs as their files' bytes, not base64) for :func:`~onnxviz.serve.binary.framed`."""
    es = [r.explanation for r in results]
    rs = [Record.of(None, e) for e in es]
    n = len(es)

    def pngs(kind):
        text = [r.pngs[kind] for r in results]
        return [base64.b64decode(t) for t in text] if kind in binary_names else text

    tensors = {  # name: (datatype, shape, values)
        "heatmap": lambda: ("FP32", [n, *es[0].heatmap.shape],
                            np.stack([np.asarray(e.heatmap, np.float32) for e in es]).ravel()),
        "target": lambda: ("INT64", [n], [r.target for r in rs]),
        "label": lambda: ("BYTES", [n], [r.label for r in rs]),
        "score": lambda: ("FP32", [n], [r.score for r in rs]),
        "heatmap_png": lambda: ("BYTES", [n], pngs("heatmap_png")),
        "overlay_png": lambda: ("BYTES", [n], pngs("overlay_png")),
    }
    outputs = []
    for k in names:
        dtype, shape, values = tensors[k]()
        if k in binary_names:
            data = binary.pack(dtype, values)
        else:
            data = values.tolist() if isinstance(values, np.ndarray) else values
        outputs.append({"name": k, "datatype": dtype, "shape": shape, "data": data})
    out = {"model_name": name, "outputs": outputs, "parameters": {"method": method}}
    flags = [not_drawn(e) or None for e in es]
    if any(flags):  # one per image: why its map is no finding (None where it is one)
        out["parameters"]["flags"] = flags
    if request_id is not None:
        out["id"] = str(request_id)
    return out


def _flatten(data: list) -> list:
    if not any(isinstance(x, list) for x in data):
        return data
    out = []
    stack = [iter(data)]
    while stack:
        for x in stack[-1]:
            if isinstance(x, list):
                stack.append(iter(x))
                break
            out.append(x)
        else:
            stack.pop()
    return out


def _not_text(i: int):
    raise ImageError(f"inputs.data[{i}]: BYTES images are base64 text of an image file")
