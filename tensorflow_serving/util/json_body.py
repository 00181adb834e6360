"""A REST request body, parsed as upstream's parser (RapidJSON) parses it.

Every POST body (:predict, :classify, :regress) is one JSON object that may
name a signature. Bodies are parsed by orjson; a body orjson refuses is
parsed again by the stdlib parser, which also takes the bare `NaN`,
`Infinity` and `-Infinity` tokens upstream accepts. The fallback is made to
refuse what orjson and RapidJSON refuse (numbers beyond a double, lone UTF-16
surrogates), so NaN in a body opens no other door. Parse errors are
INVALID_ARGUMENT "JSON Parse error: ...", as upstream words them.

Before parsing, the parsed document's size is estimated from the body
(parsed_size_estimate) and charged to the request's decode budget. A body
of up to WHOLE_PARSE_BYTES is parsed in one call (tens of milliseconds); a
larger one in pieces (json_pieces), so that no parser call holds the
interpreter for longer.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from tensorflow_serving.util import json_pieces, status
from tensorflow_serving.util.decode_budget import DecodeBudget
from tensorflow_serving.util.json_value import INT64_RANGE, UINT64_RANGE, format_error

SIGNATURE_NAME_KEY = "signature_name"

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


# Larger bodies are parsed in pieces. Splitting costs a scan of the body
# (about half a parse), which a body this small is spared.
WHOLE_PARSE_BYTES = 1 << 23
# Bytes of a body counted per call by parsed_size_estimate.
_COUNT_BYTES = 1 << 22
# What a parsed JSON value takes beyond the body's own bytes: a slot and a
# number object for a value, a list or dict object for a container.
VALUE_BYTES = 32
CONTAINER_BYTES = 64


def loads(body: bytes, max_decoded_bytes: int = 0) -> Any:
    """The JSON value of `body`; INVALID_ARGUMENT "JSON Parse error: ..." if it is not JSON.

    NaN and +-Infinity tokens are allowed, as upstream allows them. Integers
    beyond 64 bits become doubles, as in orjson and RapidJSON. With
    `max_decoded_bytes`, a body whose parsed_size_estimate passes it is
    refused (INVALID_ARGUMENT) before it is parsed.
    """
    if not body:
        raise status.invalid_argument("JSON Parse error: The document is empty")
    if max_decoded_bytes:
        DecodeBudget(max_decoded_bytes).charge(
            f"JSON body of {len(body)} bytes", parsed_size_estimate(body)
        )
    if len(body) > WHOLE_PARSE_BYTES:
        return json_pieces.loads(body, _loads_piece)
    return _loads_piece(body, 0)


def parsed_size_estimate(body: bytes) -> int:
    """About the bytes `body` takes once parsed into Python values (an upper estimate
    for numbers and containers, whose count its commas and brackets give)."""
    values = containers = 0
    for start in range(0, len(body), _COUNT_BYTES):
        end = start + _COUNT_BYTES
        values += body.count(b",", start, end)
        containers += body.count(b"[", start, end) + body.count(b"{", start, end)
    return len(body) + VALUE_BYTES * (values + 1) + CONTAINER_BYTES * containers


def _loads_piece(body: bytes, offset: int) -> Any:
    """The JSON value of `body`, found at `offset` in the request's body (for messages)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise status.invalid_argument(
            f"JSON Parse error: Invalid encoding in string. at offset: {offset + error.start}"
        ) from None
    try:
        doc = json.loads(text, parse_float=_parse_float, parse_int=_parse_int)
    except json.JSONDecodeError as error:
        raise status.invalid_argument(
            f"JSON Parse error: {error.msg} at offset: {offset + error.pos}"
        ) from None
    except RecursionError:
        raise status.invalid_argument("JSON Parse error: document nested too deeply") from None
    if _SURROGATE_ESCAPE.search(body):
        _check_surrogates(doc)
    return doc


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise status.invalid_argument(
            f"JSON Parse error: Number too big to be stored in double: {text[:40]}"
        )
    return value


def _parse_int(text: str) -> int | float:
    """Integers beyond 64 bits become doubles, as in orjson and RapidJSON."""
    if len(text) <= 20:
        value = int(text)
        if INT64_RANGE[0] <= value <= UINT64_RANGE[1]:
            return value
    return _parse_float(text)


def _check_surrogates(doc: Any) -> None:
    """A lone UTF-16 surrogate escape cannot become UTF-8: a parse error, as in orjson."""
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise status.invalid_argument(
                    "JSON Parse error: The surrogate pair in string is invalid."
                ) from None


def loads_object(body: bytes, max_decoded_bytes: int = 0) -> dict:
    """`body` parsed (see loads), which must be one JSON object: a request's document."""
    doc = loads(body, max_decoded_bytes)
    if not isinstance(doc, dict):
        raise format_error(doc, "Is not object")
    return doc


def signature_name(doc: dict) -> str:
    """The request's optional "signature_name"; "" means the default signature.

    INVALID_ARGUMENT if it is present and not a string.
    """
    name = doc.get(SIGNATURE_NAME_KEY, "")
    if not isinstance(name, str):
        raise format_error(
            doc, "not formatted correctly. 'signature_name' key must be a string value."
        )
    return name


__all__ = [
    "SIGNATURE_NAME_KEY",
    "loads",
    "loads_object",
    "parsed_size_estimate",
    "signature_name",
]
