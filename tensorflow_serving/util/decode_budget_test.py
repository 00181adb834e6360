"""DecodeBudget charges what each input decodes to and refuses a request past its limit."""

import sys

from tensorflow.core.framework import types_pb2

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import decode_budget
from tensorflow_serving.util.decode_budget import DecodeBudget


def test_elements_cost_their_item_size_and_strings_their_object():
    assert decode_budget.tensor_bytes(types_pb2.DT_FLOAT, [3, 4]) == 48
    assert decode_budget.tensor_bytes(types_pb2.DT_INT8, [3]) == 3
    assert decode_budget.tensor_bytes(types_pb2.DT_STRING, [2]) == 2 * 48
    assert decode_budget.tensor_bytes(types_pb2.DT_FLOAT, [2**62, 2**62]) == 2**126  # no wrap


def test_charges_add_up_and_the_one_past_the_limit_is_refused_naming_the_flag():
    budget = DecodeBudget(100)
    budget.charge_tensor("a", types_pb2.DT_FLOAT, [25])  # 100 bytes: at the limit
    error = testing.serving_error(budget.charge_tensor, "b", types_pb2.DT_INT8, [1])
    assert error.code.name == "INVALID_ARGUMENT"
    assert error.message == (
        "Input tensor b of shape [1] and dtype int8 takes 1 bytes once decoded; a request "
        "may decode to at most 100 bytes (--max_decoded_request_bytes)"
    )


def test_zero_means_no_limit():
    DecodeBudget(0).charge_tensor("x", types_pb2.DT_STRING, [2**40])


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
