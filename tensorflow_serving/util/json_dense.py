"""Dense numeric predict bodies, decoded without building Python objects.

The common REST :predict body is one dense tensor of numbers:

    {"signature_name": "...", "instances": [[0.0, 0.5, ...], ...]}

The general decoder (json_body, then json_predict_request) parses it with
orjson into a list of Python floats, then numpy copies them into an array:
one Python object per number, allocated and freed, on the event loop.

simdjson parses the body into its own tape and hands the numbers over as one
buffer of doubles. This module takes only bodies whose meaning is beyond
doubt, and returns None for everything else, so that the general decoder
answers (and words every error) as before:

- the body starts with "{", has no backslash (so no escapes: every key and
  string reads as written), and simdjson accepts it;
- its keys are "signature_name" (a string) and exactly one of "instances" or
  "inputs", each once;
- that value is a non-empty list of numbers, or a non-empty list of
  non-empty lists of numbers, all of one length. The body has no "[" other
  than those lists' own, so no list hides deeper inside.

What it returns is what the general decoder would make of the same body:
the same numbers (both parsers round decimal text to the nearest double),
the same shape, and the same request format. Whether the numbers suit the
signature's dtype is decided by json_to_tensor.dense_tensor.
"""

from __future__ import annotations

import dataclasses
import math
import threading

import numpy as np
import simdjson

from tensorflow_serving.util.json_body import SIGNATURE_NAME_KEY
from tensorflow_serving.util.json_predict_request import INPUTS_KEY, INSTANCES_KEY, RequestFormat

# A parser keeps buffers as large as the largest body it has parsed; larger
# bodies (rare, and slow to decode anyway) take the general decoder.
MAX_BODY_BYTES = 1 << 20

_FORMATS = {INSTANCES_KEY: RequestFormat.ROW, INPUTS_KEY: RequestFormat.COLUMNAR}

_parsers = threading.local()


@dataclasses.dataclass(frozen=True)
class DenseBody:
    """A :predict body holding one dense numeric tensor."""

    signature_name: str  # "" when absent: the default signature
    format: RequestFormat
    values: np.ndarray  # float64, in the tensor's shape


def decode(body: bytes) -> DenseBody | None:
    """The body as one dense tensor of doubles, or None if the general decoder must judge."""
    if len(body) > MAX_BODY_BYTES or not body.startswith(b"{") or b"\\" in body:
        return None
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = simdjson.Parser()
    try:
        return _decode(parser, body)
    except RuntimeError:  # the parser is busy (a proxy of it outlived a call): drop it
        _parsers.parser = None
        return None
    except (ValueError, TypeError, KeyError):
        # Not JSON, or not this shape: ValueError/UnicodeDecodeError from the
        # parser, TypeError from a non-number in the buffer. The parser stays:
        # a new one would allocate its buffers again for every such body.
        return None


def _decode(parser: simdjson.Parser, body: bytes) -> DenseBody | None:
    """decode()'s work; every simdjson proxy is a local, gone when this returns."""
    doc = parser.parse(body)
    if not isinstance(doc, simdjson.Object):
        return None
    has_instances = INSTANCES_KEY in doc
    if has_instances == (INPUTS_KEY in doc):
        return None  # neither, or both: errors the general decoder words
    key = INSTANCES_KEY if has_instances else INPUTS_KEY
    fields = len(doc)  # a repeated key counts twice
    if fields == 1:
        signature_name = ""
    elif fields == 2 and SIGNATURE_NAME_KEY in doc:
        signature_name = doc[SIGNATURE_NAME_KEY]
        if not isinstance(signature_name, str) or "[" in signature_name:
            return None
    else:
        return None
    tensor = doc[key]
    if not isinstance(tensor, simdjson.Array):
        return None
    shape = _dense_shape(tensor, body.count(b"["))
    if shape is None:
        return None
    values = np.frombuffer(tensor.as_buffer(of_type="d"), dtype=np.float64)
    if values.size != math.prod(shape):
        return None
    return DenseBody(signature_name, _FORMATS[key], values.reshape(shape))


def _dense_shape(tensor: simdjson.Array, brackets: int) -> tuple[int, ...] | None:
    """[n] or [n, m] if `tensor` is a list of numbers or of equal-length lists of them.

    `brackets` counts every "[" in the body. The signature name has none, so
    each is a list's opening: one for `tensor`, one per row, and none left
    over for a list inside a row.
    """
    rows = len(tensor)
    if rows == 0:
        return None
    if brackets == 1:
        return (rows,)  # numbers only: as_buffer refuses anything else
    if brackets != 1 + rows:
        return None
    width = -1
    for row in tensor:
        if not isinstance(row, simdjson.Array):
            return None
        if width < 0:
            width = len(row)
        elif len(row) != width:
            return None
    return (rows, width) if width > 0 else None


__all__ = ["MAX_BODY_BYTES", "DenseBody", "decode"]
