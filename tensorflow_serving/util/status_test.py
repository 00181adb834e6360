"""The one error type maps to the HTTP codes upstream's REST API uses."""

import sys

import grpc

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status


def test_codes_map_to_upstream_http_statuses():
    assert status.not_found("x").http_status() == 404
    assert status.invalid_argument("x").http_status() == 400
    assert status.failed_precondition("x").http_status() == 400
    assert status.unavailable("x").http_status() == 503
    assert status.deadline_exceeded("x").http_status() == 504
    assert status.internal("x").http_status() == 500


def test_error_keeps_code_and_message():
    error = status.invalid_argument("bad shape [2, 3]")
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert str(error) == "bad shape [2, 3]"
    assert "INVALID_ARGUMENT" in repr(error)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
