"""The Open Inference Protocol's binary tensor data extension (KServe's and Triton's), both ways.

A request body may be a JSON header followed by raw tensor bytes: the
``Inference-Header-Content-Length`` header gives the JSON's length, and each input whose
``parameters.binary_data_size`` is set takes that many of the following bytes, in the order of
``inputs``. Numbers are little-endian, row major; a ``BYTES`` element is a 4-byte little-endian
length and its bytes. An answer carries an output as raw bytes after its JSON when the request
asks so (``parameters.binary_data`` on the output, or ``parameters.binary_data_output`` on the
request for every output): the output gets ``parameters.binary_data_size`` instead of ``data``,
and the answer the same header.

A body may also come compressed (``Content-Encoding: gzip`` or ``deflate``, as tritonclient's
``request_compression_algorithm`` sends it): :func:`inflate` undoes that first, within the body
limit.

Specification: https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol/
binary-tensor-data-extension (Triton's ``docs/protocol/extension_binary_data.md`` is the same).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import RequestError, TooLarge

#: The HTTP header that gives the JSON part's length, in requests and answers.
HEADER = "Inference-Header-Content-Length"
#: The name of the extension in the server metadata's ``extensions``.
EXTENSION = "binary_tensor_data"
#: The request parameter that asks for every output as binary data.
OUTPUT_PARAM = "binary_data_output"
#: The content type of an answer with binary outputs (as Triton's).
CONTENT_TYPE = "application/octet-stream"

#: numpy types of the numeric datatypes (``BYTES`` elements are length-prefixed instead).
NUMPY = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
         "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
         "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}


@dataclass(frozen=True)
class Raw:
    """A tensor's bytes, in place of its JSON ``data`` (JSON never gives this type)."""

    data: bytes


def body_of(raw: bytes, header: str | None) -> dict:
    """The request object of a body: JSON, or with ``header`` (the value of
    :data:`HEADER`) a JSON header whose binary inputs get their bytes as :class:`Raw` ``data``.

    Raises:
        RequestError: bad JSON, or framing that does not add up (a header past the body, sizes
            that leave bytes over or run past the end, an input with both ``data`` and bytes).
    """
    if header is None:
        body = _json(raw, "the body")
        for t in _inputs(body):
            if _size(t) is not None:
                raise RequestError(f"input {t.get('name')!r} has parameters.binary_data_size but "
                                   f"the request has no {HEADER} header")
        return body
    length = header.strip()
    if not length.isdigit():
        raise RequestError(f"the {HEADER} header must be a byte count >= 0, got {header!r}")
    if int(length) > len(raw):
        raise RequestError(f"the {HEADER} header says {int(length)} bytes of JSON, but the body "
                           f"has {len(raw)}")
    at = int(length)
    body = _json(raw[:at], f"the JSON header (the first {at} bytes of the body)")
    for t in _inputs(body):
        size = _size(t)
        if size is None:
            continue
        if "data" in t:
            raise RequestError(f"input {t.get('name')!r} has both 'data' and "
                               "parameters.binary_data_size: send one")
        if at + size > len(raw):
            raise RequestError(f"input {t.get('name')!r}: binary_data_size {size} runs past the "
                               f"body's end ({len(raw) - at} bytes left after byte {at})")
        t["data"] = Raw(raw[at:at + size])
        at += size
    if at != len(raw):
        raise RequestError(f"{len(raw) - at} bytes after the inputs' binary data are not claimed "
                           "by any input's parameters.binary_data_size")
    return body


def elements(raw: Raw, dtype, shape: list[int]):
    """A binary input's elements: a flat numpy array, or for ``BYTES`` a list of bytes.

    Raises:
        RequestError: a size that does not match ``shape`` and ``dtype``, an unknown datatype.
    """
    count = math.prod(shape)
    if dtype == "BYTES":
        out = _unpack_bytes(raw.data)
        if len(out) != count:
            raise RequestError(f"binary BYTES input holds {len(out)} elements but its shape "
                               f"{shape} needs {count}")
        return out
    if dtype not in NUMPY:
        raise RequestError(f"input datatype {dtype!r} is unknown; use BYTES or one of "
                           f"{', '.join(NUMPY)}")
    t = np.dtype(NUMPY[dtype]).newbyteorder("<")
    if len(raw.data) != count * t.itemsize:
        raise RequestError(f"binary_data_size {len(raw.data)} does not match shape {shape} of "
                           f"{dtype}: {count} x {t.itemsize} = {count * t.itemsize} bytes")
    return np.frombuffer(raw.data, t)


def pack(dtype: str, values) -> Raw:
    """An output's values as its binary data: numbers little-endian, ``BYTES`` elements (bytes
    or text, UTF-8) length-prefixed."""
    if dtype == "BYTES":
        parts = []
        for v in values:
            b = v.encode("utf-8") if isinstance(v, str) else bytes(v)
            parts += (struct.pack("<I", len(b)), b)
        return Raw(b"".join(parts))
    return Raw(np.ascontiguousarray(values, np.dtype(NUMPY[dtype]).newbyteorder("<")).tobytes())


def wanted(body: dict, params: dict, names) -> set[str]:
    """The outputs of ``names`` to send as binary data: those whose request entry says
    ``parameters.binary_data: true``, and with ``binary_data_output: true`` every one whose
    entry does not say false."""
    default = params.get(OUTPUT_PARAM, False)
    if not isinstance(default, bool):
        raise RequestError(f"parameters.{OUTPUT_PARAM} must be true or false, got {default!r}")
    own = {}
    for o in body.get("outputs") or ():
        p = o.get("parameters") or {}
        if not isinstance(p, dict):
            raise RequestError(f"output {o['name']!r}: 'parameters' must be an object")
        if p.get("binary_data") is not None:
            if not isinstance(p["binary_data"], bool):
                raise RequestError(f"output {o['name']!r}: parameters.binary_data must be true "
                                   f"or false, got {p['binary_data']!r}")
            own[o["name"]] = p["binary_data"]
    return {n for n in names if own.get(n, default)}


def framed(out: dict) -> tuple[bytes, dict] | None:
    """An answer whose outputs hold :class:`Raw` data as (body, headers): its JSON, then each
    such output's bytes in order; None when no output is binary (a plain JSON answer)."""
    chunks = []
    for o in out["outputs"]:
        if isinstance(o.get("data"), Raw):
            data = o.pop("data").data
            o["parameters"] = {**o.get("parameters", {}), "binary_data_size": len(data)}
            chunks.append(data)
    if not chunks:
        return None
    head = json.dumps(out).encode()
    return b"".join([head, *chunks]), {HEADER: str(len(head))}


def inflate(data: bytes, encoding: str | None, limit: int) -> bytes:
    """A body sent with ``Content-Encoding: gzip`` or ``deflate`` (as tritonclient's
    ``request_compression_algorithm`` sends it), decompressed no further than ``limit`` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return data
    if encoding not in ("gzip", "deflate"):
        raise RequestError(f"Content-Encoding {encoding!r} is not read here; send the body "
                           "as it is, or gzip or deflate")
    z = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        out = z.decompress(data, limit + 1)
    except zlib.error as e:
        raise RequestError(f"the body is not valid {encoding} data: {e}") from None
    if len(out) > limit:
        raise TooLarge(f"the body decompresses past this server's limit of {limit} bytes "
                       "(onnxviz serve --max-body-mb)")
    if not z.eof:
        raise RequestError(f"the {encoding} body is cut short")
    return out


def _json(raw: bytes, what: str) -> dict:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise RequestError(f"{what} must be a JSON object, got {type(body).__name__}")
    return body


def _inputs(body: dict) -> list[dict]:
    inputs = body.get("inputs")
    return [t for t in inputs if isinstance(t, dict)] if isinstance(inputs, list) else []


def _size(tensor: dict) -> int | None:
    params = tensor.get("parameters")
    if not isinstance(params, dict) or params.get("binary_data_size") is None:
        return None
    size = params["binary_data_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise RequestError(f"input {tensor.get('name')!r}: parameters.binary_data_size must be "
                           f"an integer >= 0, got {size!r}")
    return size


def _unpack_bytes(data: bytes) -> list[bytes]:
    out, at = [], 0
    while at < len(data):
        if at + 4 > len(data):
            raise RequestError(f"binary BYTES input: a length prefix is cut short at byte {at}")
        (n,) = struct.unpack_from("<I", data, at)
        if at + 4 + n > len(data):
            raise RequestError(f"binary BYTES input: element {len(out)} of {n} bytes runs past "
                               f"the tensor's {len(data)} bytes")
        out.append(data[at + 4:at + 4 + n])
        at += 4 + n
    return out
