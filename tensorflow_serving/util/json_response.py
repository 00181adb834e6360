"""REST answers as upstream writes them: predict, classify, regress, and errors.

- Predict: `{"predictions": ...}` for a row-format request and
  `{"outputs": ...}` for a columnar one (json_predict_request.RequestFormat).
- Classify / regress: `{"results": ...}`; errors: `{"error": "..."}`.
- Floats read back as the numbers upstream's text holds (json_float);
  NaN, Infinity and -Infinity are written as bare tokens (not strict JSON).
- Outputs whose alias ends in `_bytes` are written as `{"b64": "..."}`,
  other strings as text.

Answers are written by orjson straight from numpy, or by the stdlib writer
when a bare NaN/Infinity token must appear. With batching, a task's outputs
arrive as an OutputRows (batching/batch_outputs.py): the float conversion,
the NaN/infinity check and, for an answer of one 2-D output, the JSON text
of each row are then made once for the whole batch, and each answer takes
its rows of them. The bytes are the same either way.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from tensorflow_serving.apis import classification_pb2, regression_pb2
from tensorflow_serving.batching.batch_outputs import BatchOutputs, OutputRows
from tensorflow_serving.util import status
from tensorflow_serving.util.json_float import float32_as_upstream_doubles
from tensorflow_serving.util.json_predict_request import RequestFormat
from tensorflow_serving.util.json_value import B64_KEY

PREDICTIONS_KEY = "predictions"
OUTPUTS_KEY = "outputs"
RESULTS_KEY = "results"
ERROR_KEY = "error"
BYTES_SUFFIX = "_bytes"

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_ROW_ANSWER = b'{"%s":' % PREDICTIONS_KEY.encode()
_COLUMNAR_ANSWER = b'{"%s":' % OUTPUTS_KEY.encode()

# What this module keeps with a batch (BatchOutputs.memo), each with an output alias.
_DOUBLES = f"{__name__}.upstream_doubles"
_FINITE = f"{__name__}.finite"
_ROW_TEXTS = f"{__name__}.row_texts"


def predict_response_json(outputs: Mapping[str, np.ndarray], fmt: RequestFormat) -> bytes:
    """The body of a predict answer: {"predictions": ...} (ROW) or {"outputs": ...} (COLUMNAR).

    `outputs` maps output aliases to arrays: any mapping, or a task's
    OutputRows, whose answer is the same bytes but reuses what was computed
    once for its batch. One output is written as its value alone. Several are
    written, in ROW format, as a list of one object per row (all outputs must
    have the same first dimension), and in COLUMNAR format as an object keyed
    by alias. Raises INVALID_ARGUMENT with upstream's message for no outputs,
    and in ROW format for a scalar output or differing first dimensions.
    Thread-safe.
    """
    if not outputs:
        raise status.invalid_argument("Cannot convert empty tensor map to JSON")
    rows = outputs if isinstance(outputs, OutputRows) else None
    if rows is not None and len(rows) == 1:
        text = _rows_text(rows)
        if text is not None:  # the common batched answer: its rows, written once for all
            return (_ROW_ANSWER if fmt is RequestFormat.ROW else _COLUMNAR_ANSWER) + text + b"}"
    names = sorted(outputs)
    arrays = {name: outputs[name] for name in names}
    non_finite = _has_non_finite(arrays, rows)
    if fmt is RequestFormat.ROW:
        batch = -1
        for name in names:
            array = arrays[name]
            if array.ndim == 0:
                raise status.invalid_argument(f"Tensor name: {name} has no shape information ")
            if batch >= 0 and array.shape[0] != batch:
                raise status.invalid_argument(
                    f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                    f"expecting: {batch}"
                )
            batch = array.shape[0]
        values = {name: _jsonable(name, arrays[name], rows) for name in names}
        if len(names) == 1:
            document = {PREDICTIONS_KEY: values[names[0]]}
        else:
            document = {
                PREDICTIONS_KEY: [{name: values[name][i] for name in names} for i in range(batch)]
            }
        return dumps(document, non_finite)
    values = {name: _jsonable(name, arrays[name], rows) for name in names}
    if len(names) == 1:
        return dumps({OUTPUTS_KEY: values[names[0]]}, non_finite)
    return dumps({OUTPUTS_KEY: values}, non_finite)


def _jsonable(name: str, array: np.ndarray, rows: OutputRows | None) -> Any:
    """Output `name` as orjson should write it; `array` is the output (`rows[name]` if rows)."""
    kind = array.dtype.kind
    if array.dtype in (np.float32, np.float16):
        array = _upstream_doubles(name, array, rows)
    elif kind == "O" or kind in "SU":
        as_bytes = name.endswith(BYTES_SUFFIX)
        flat = [
            _string_value(v, as_bytes) for v in (array.reshape(-1).tolist() if array.size else [])
        ]
        holder = np.empty(len(flat), dtype=object)
        holder[:] = flat
        return holder.reshape(array.shape).tolist() if array.ndim else holder[0]
    if array.ndim == 0:
        return array[()]
    return np.ascontiguousarray(array)


def _upstream_doubles(name: str, array: np.ndarray, rows: OutputRows | None) -> np.ndarray:
    """float32_as_upstream_doubles(array); for a batch's rows, converted once for the batch."""
    if rows is None:
        return float32_as_upstream_doubles(array)
    batch = rows.batch
    whole = batch.memo((_DOUBLES, name), lambda: float32_as_upstream_doubles(batch.outputs[name]))
    return whole[rows.start : rows.stop]


def _is_finite(name: str, array: np.ndarray, rows: OutputRows | None) -> bool:
    """Whether `array` holds no NaN or infinity; at once for the rows of a finite batch."""
    if rows is not None:
        batch = rows.batch
        if batch.memo((_FINITE, name), lambda: bool(np.isfinite(batch.outputs[name]).all())):
            return True
    return bool(np.isfinite(array).all())


def _has_non_finite(arrays: Mapping[str, np.ndarray], rows: OutputRows | None) -> bool:
    for name, array in arrays.items():
        if array.dtype.kind == "f" and array.size and not _is_finite(name, array, rows):
            return True
    return False


def _rows_text(rows: OutputRows) -> bytes | None:
    """The JSON of the one output of `rows`, joined from its batch's row texts, if it has them."""
    if rows.stop <= rows.start:
        return None
    (name,) = rows
    batch = rows.batch
    texts = batch.memo((_ROW_TEXTS, name), lambda: _row_texts(name, batch))
    if texts is None:
        return None
    return b"[[" + b"],[".join(texts[rows.start : rows.stop]) + b"]]"


def _row_texts(name: str, batch: BatchOutputs) -> list[bytes] | None:
    """The JSON of each row of output `name` of `batch`, without its brackets.

    orjson writes the whole output once, `[[a,b],[c,d]]`, and the text is cut
    at its "],[" marks (numbers hold none). None unless the output is a
    non-empty 2-D numeric array with no NaN or infinity (the stdlib writer
    spells those).
    """
    array = batch.outputs[name]
    if (
        array.ndim != 2
        or not array.size
        or array.dtype.kind not in "biuf"
        or not array.dtype.isnative
    ):
        return None
    whole = batch.slice(0, batch.rows)
    if array.dtype.kind == "f" and not _is_finite(name, array, whole):
        return None
    text = orjson.dumps(_jsonable(name, array, whole), option=_NUMPY)
    return text[2:-2].split(b"],[")


def _string_value(value: Any, as_bytes: bool) -> Any:
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    if as_bytes:
        return {B64_KEY: base64.b64encode(raw).decode("ascii")}
    return raw.decode("utf-8", "replace")


def _to_plain(value: Any) -> Any:
    """numpy leaves -> Python lists/floats, for the stdlib writer."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    return value


def dumps(document: Any, non_finite: bool = False) -> bytes:
    """`document` (dicts, lists, numpy arrays and scalars) as UTF-8 JSON.

    Written compactly by orjson, unless `non_finite` says NaN or an infinity
    may appear: then by the stdlib writer, which spells them as upstream
    does (bare NaN, Infinity, -Infinity tokens).
    """
    if not non_finite:
        return orjson.dumps(document, option=_NUMPY)
    return json.dumps(_to_plain(document), allow_nan=True, ensure_ascii=False).encode("utf-8")


def classification_response_json(result: classification_pb2.ClassificationResult) -> bytes:
    """{"results": [[[label, score], ...], ...]}, a list per example; INVALID_ARGUMENT if empty."""
    if not result.classifications:
        raise status.invalid_argument("Cannot convert empty ClassificationResults to JSON")
    labels = [[c.label for c in cl.classes] for cl in result.classifications]
    scores = [[c.score for c in cl.classes] for cl in result.classifications]
    flat = np.array([s for row in scores for s in row], dtype=np.float32)
    non_finite = flat.size > 0 and not np.isfinite(flat).all()
    shown = float32_as_upstream_doubles(flat).tolist()
    rows, offset = [], 0
    for row_labels in labels:
        rows.append([[label, shown[offset + i]] for i, label in enumerate(row_labels)])
        offset += len(row_labels)
    return dumps({RESULTS_KEY: rows}, non_finite)


def regression_response_json(result: regression_pb2.RegressionResult) -> bytes:
    """{"results": [value, ...]}, one value per example; INVALID_ARGUMENT if empty."""
    if not result.regressions:
        raise status.invalid_argument("Cannot convert empty RegressionResults to JSON")
    values = np.array([r.value for r in result.regressions], dtype=np.float32)
    non_finite = not np.isfinite(values).all()
    return dumps({RESULTS_KEY: float32_as_upstream_doubles(values).tolist()}, non_finite)


def error_json(message: str) -> bytes:
    """{"error": message}: the body of every REST error answer. Never raises.

    A message that orjson cannot write (a lone surrogate, say) is written
    by the stdlib writer with escapes, rather than failing the answer.
    """
    try:
        return orjson.dumps({ERROR_KEY: message})
    except orjson.JSONEncodeError:
        return json.dumps({ERROR_KEY: message}).encode("ascii")


__all__ = [
    "BYTES_SUFFIX",
    "ERROR_KEY",
    "OUTPUTS_KEY",
    "PREDICTIONS_KEY",
    "RESULTS_KEY",
    "classification_response_json",
    "dumps",
    "error_json",
    "predict_response_json",
    "regression_response_json",
]
