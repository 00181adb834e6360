"""Regress: tf.Examples in, one float per example out, over a regress signature."""

from __future__ import annotations

from tensorflow.core.framework import types_pb2

from tensorflow_serving.apis import regression_pb2
from tensorflow_serving.core.servable_handle import ServableHandle
from tensorflow_serving.servables.tensorflow import method_name_check, util
from tensorflow_serving.util import status

OUTPUTS = "outputs"


def regress(
    handle, signature_name: str, input_proto
) -> tuple[regression_pb2.RegressionResult, str]:
    """Runs a regress signature on the Input's examples.

    Returns the result, one Regression per example in input order, and the key
    of the signature that ran (for the response's model_spec).
    """
    signature = util.inference_signature(handle.servable, signature_name)
    method_name_check.check_regress(signature)
    if OUTPUTS not in signature.outputs:
        raise status.invalid_argument(
            f"No output Tensor named '{OUTPUTS}' in regression signature {signature.key}; "
            f"it has {{{','.join(sorted(signature.outputs))}}}."
        )
    if signature.outputs[OUTPUTS].dtype != types_pb2.DT_FLOAT:
        raise status.invalid_argument("Expected output Tensor of DT_FLOAT.")
    examples = util.serialized_examples(input_proto)
    batch = len(examples)
    values = util.run_on_examples(handle, signature, examples, (OUTPUTS,))[OUTPUTS]
    util.check_batch(OUTPUTS, values, batch)
    if values.ndim > 2 or (values.ndim == 2 and values.shape[1] != 1):
        raise status.invalid_argument(
            f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
            f"but got {list(values.shape)}"
        )
    result = regression_pb2.RegressionResult()
    for value in values.reshape(batch):
        result.regressions.add().value = float(value)
    return result, signature.key


def regress_response(
    handle: ServableHandle, request: regression_pb2.RegressionRequest
) -> regression_pb2.RegressionResponse:
    """RegressionRequest in, RegressionResponse out, on `handle`'s version."""
    return util.examples_response(regress, regression_pb2.RegressionResponse(), handle, request)
