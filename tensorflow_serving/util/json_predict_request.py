"""The tensors of a :predict body, in either of upstream's two formats (api_rest.md).

Row format: `{"instances": [...]}`, one element per example; an element is
one input's value, or an object naming every input. Each input's elements
are stacked into a batch. Columnar format: `{"inputs": ...}`, one value per
input (or an object of them), each already a whole tensor, whose batch sizes
may differ. The answer is written in the same format (json_response).

Each value becomes a tensor of the signature's dtype (json_to_tensor).
Errors carry upstream's messages, in upstream's order: a client that parses
them sees the same words.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import numpy as np

from tensorflow_serving.util import status
from tensorflow_serving.util.json_to_tensor import (
    array_from_leaves,
    checked_shape,
    collect_leaves,
    fast_tensor,
    tensor_from_json,
)
from tensorflow_serving.util.json_value import (
    format_error,
    is_base64_object,
    status_text,
    value_to_string,
)

INSTANCES_KEY = "instances"
INPUTS_KEY = "inputs"


class RequestFormat(enum.Enum):
    """How a predict request laid out its tensors; the answer uses the same layout."""

    ROW = INSTANCES_KEY
    COLUMNAR = INPUTS_KEY


def signature_input_dtypes(signature) -> dict[str, int]:
    """alias -> DataType of a loaded Signature's inputs (computed per request, cheap)."""
    return {alias: spec.dtype for alias, spec in signature.inputs.items()}


def predict_inputs_from_json(
    doc: dict, dtypes: Mapping[str, int], body: bytes | None = None
) -> tuple[dict[str, np.ndarray], RequestFormat]:
    """The tensors of a predict request, typed by the signature's input dtypes, and its format.

    `doc` is the parsed body (json_body.loads_object); `dtypes` maps each
    input alias of the signature to its DataType; `body`, the raw request,
    lets the fast path skip bool detection when the text has no true/false
    at all. Raises INVALID_ARGUMENT (or UNIMPLEMENTED for a dtype JSON cannot
    feed) with upstream's message.
    """
    may_have_bools = body is None or b"true" in body or b"false" in body
    has_instances = INSTANCES_KEY in doc
    has_inputs = INPUTS_KEY in doc
    if has_instances and has_inputs:
        raise format_error(
            doc,
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ",
        )
    if has_instances:
        instances = doc[INSTANCES_KEY]
        if not isinstance(instances, list):
            raise format_error(doc, "Excepting 'instances' to be an list/array")
        if not instances:
            raise format_error(doc, "No values in 'instances' array")
        tensors = _rows_fast(instances, dtypes, may_have_bools)
        if tensors is None:
            tensors = _rows_exact(instances, dtypes)
        return tensors, RequestFormat.ROW
    if has_inputs:
        return _columns(doc[INPUTS_KEY], dtypes, may_have_bools), RequestFormat.COLUMNAR
    raise status.invalid_argument("Missing 'inputs' or 'instances' key")


def _rows_fast(
    instances: list, dtypes: Mapping[str, int], may_have_bools: bool
) -> dict[str, np.ndarray] | None:
    """The row format's tensors made column by column in bulk; None: _rows_exact decides."""
    first = instances[0]
    if isinstance(first, dict) and not is_base64_object(first):
        names = set(dtypes)
        for element in instances:
            if type(element) is not dict or element.keys() != names:
                return None
        columns = {name: [element[name] for element in instances] for name in dtypes}
    elif len(dtypes) == 1:
        columns = {next(iter(dtypes)): instances}
    else:
        return None
    result = {}
    for name, column in columns.items():
        array = fast_tensor(column, dtypes[name], may_have_bools)
        if array is None or array.ndim == 0 or array.shape[0] != len(instances):
            return None
        result[name] = array
    return result


def _rows_exact(instances: list, dtypes: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Upstream's per-instance processing, in its order, with its messages."""
    first = instances[0]
    if not isinstance(first, dict) and len(dtypes) > 1:
        raise status.invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    objects = isinstance(first, dict) and not is_base64_object(first)
    input_names = set(dtypes)
    leaves: dict[str, list] = {name: [] for name in dtypes}
    shapes: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}

    def add_item(item: Any, name: str) -> None:
        if name not in dtypes:
            raise status.invalid_argument(f"JSON object: does not have named input: {name}")
        shape = checked_shape(item, outer=1)
        values: list = []
        collect_leaves(item, shape, dtypes[name], values)
        if name not in sizes:
            sizes[name] = len(values)
            shapes[name] = shape
        elif sizes[name] != len(values):
            raise status.invalid_argument(
                f"Expecting tensor size: {sizes[name]} but got: {len(values)}"
            )
        elif shapes[name] != shape:
            raise status.invalid_argument(
                f"Expecting shape {_shape_text(shapes[name])} but got: {_shape_text(shape)}"
            )
        leaves[name].extend(values)

    def add_element(item: Any, name: str, where: str) -> None:
        """add_item, its error wrapped as upstream wraps it, naming the element `where`."""
        try:
            add_item(item, name)
        except status.ServingError as error:
            raise status.invalid_argument(
                f"Failed to process element: {where} of 'instances' list. "
                f"Error: {status_text(error)}"
            ) from None

    for index, element in enumerate(instances):
        element_is_object = isinstance(element, dict) and not is_base64_object(element)
        if objects:
            if not element_is_object:
                raise status.invalid_argument(
                    f"Expecting object but got list at item {index} of input list"
                )
            for name, item in element.items():
                add_element(item, name, f"{index} key: {name}")
            if set(element) != input_names:
                raise status.invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{value_to_string(element)} keys must be equal to: "
                    f"{','.join(sorted(input_names))}"
                )
        else:
            if element_is_object:
                raise status.invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            # Upstream takes the (first) input's name; a missing input then
            # fails the signature check, with the gRPC message.
            add_element(element, min(dtypes), str(index))
    count = len(instances)
    return {
        name: array_from_leaves(leaves[name], [count, *shapes[name]], dtypes[name])
        for name in shapes
    }


def _shape_text(shape: list[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _columns(value: Any, dtypes: Mapping[str, int], may_have_bools: bool) -> dict[str, np.ndarray]:
    """The columnar format's tensors: one value, or an object with a value per input."""
    if not isinstance(value, dict) or is_base64_object(value):
        if len(dtypes) > 1:
            raise status.invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        ((name, dtype),) = dtypes.items()
        return {name: tensor_from_json(value, dtype, may_have_bools)}
    result = {}
    for name in sorted(dtypes):
        if name not in value:
            raise status.invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        result[name] = tensor_from_json(value[name], dtypes[name], may_have_bools)
    return result


__all__ = [
    "INPUTS_KEY",
    "INSTANCES_KEY",
    "RequestFormat",
    "predict_inputs_from_json",
    "signature_input_dtypes",
]
