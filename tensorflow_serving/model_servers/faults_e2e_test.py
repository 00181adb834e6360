"""Faults on disk, end to end: the built binary keeps answering with the version it
serves, shows the fault in GetModelStatus, in REST model status and in its log,
and recovers by itself once the files are fixed.

One server for the module, each fault on its own model so the tests do not
interfere; the config file is polled, and a load that hangs is bounded by
--load_timeout_seconds (our flag, not upstream's).

SIGKILL of an exporter is covered where exports are made atomic:
tensorflow_serving/example/atomic_export_test.py kills an exporter mid-write
and checks that the server's view of the base path never holds half a version.
"""

import json
import os
import sys

import grpc
import numpy as np
import pytest

from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.servables.tensorflow.testdata import export_faulty_model as faulty
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.util import tensor_codec

MODELS = ("garbage", "novars", "raises", "hangs", "vanish", "loop", "ctime")
LOAD_TIMEOUT = 3


def config_text(base, names):
    entries = "".join(
        f'config {{ name: "{n}" base_path: "{base / n}" model_platform: "tensorflow" }}\n'
        for n in names
    )
    return f"model_config_list {{\n{entries}}}\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("faults")
    for name in MODELS:
        hp.export_half_plus_two_tf1(str(base / name), 1, b=1.0)  # y = 0.5x + 1
    config = base / "models.config"
    config.write_text(config_text(base, MODELS))
    running = RunningServer(
        base,
        "faults",
        [
            f"--model_config_file={config}",
            "--model_config_file_poll_wait_seconds=1",
            "--file_system_poll_wait_seconds=1",
            "--max_num_load_retries=0",
            f"--load_timeout_seconds={LOAD_TIMEOUT}",
        ],
    )
    running.base = base
    running.config = config
    # serving() also asserts the exit code 0 after SIGTERM: a hung load must not block it.
    with running.serving():
        yield running


def predict(server, model):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    tensor_codec.to_tensor_proto(np.array([[2.0]], np.float32), request.inputs["x"])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    response = stub.Predict(request, timeout=30)
    return response.model_spec.version.value, response.outputs["y"].float_val[0]


def grpc_status(server, model):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    stub = model_service_pb2_grpc.ModelServiceStub(server.channel)
    response = stub.GetModelStatus(request, timeout=30)
    return {s.version: s for s in response.model_version_status}


def rest_status(server, model):
    code, document = server.json("GET", f"/v1/models/{model}")
    assert code == 200, document
    return {int(s["version"]): s for s in document["model_version_status"]}


def wait_for(predicate, timeout=90):
    return testing.wait_for(predicate, timeout, interval=0.2)


def version_state(server, model, version):
    entry = grpc_status(server, model).get(version)
    return None if entry is None else entry.state


END, AVAILABLE = 50, 30


def assert_fault_reported(server, model, code_name, words):
    """Version 2 ENDed with `words`; version 1 answers; the log says why."""
    assert wait_for(lambda: version_state(server, model, 2) == END), server.log_tail()
    entry = grpc_status(server, model)[2]
    assert grpc.StatusCode[code_name].value[0] == entry.status.error_code
    assert words in entry.status.error_message
    via_rest = rest_status(server, model)[2]
    assert via_rest["state"] == "END"
    assert via_rest["status"]["error_code"] == code_name
    assert words in via_rest["status"]["error_message"]
    assert f"Loading servable {{name: {model} version: 2}} failed" in server.log_path.read_text()
    assert predict(server, model) == (1, 2.0), "the old version keeps answering"
    assert rest_status(server, model)[1]["state"] == "AVAILABLE"


def assert_recovers(server, model):
    hp.export_half_plus_two_tf1(str(server.base / model), 2, b=20.0, overwrite=True)
    assert wait_for(lambda: predict(server, model) == (2, 21.0)), server.log_tail()
    assert rest_status(server, model)[2]["status"]["error_code"] == "OK"


@pytest.mark.parametrize(
    "model,kind,code_name,words",
    [
        ("garbage", "garbage_saved_model", "FAILED_PRECONDITION", "saved_model.pb"),
        ("novars", "missing_variables", "FAILED_PRECONDITION", "variables"),
    ],
)
def test_corrupt_version_is_reported_and_recovers(server, model, kind, code_name, words):
    hp.export_corrupt_version(str(server.base / model), 2, kind)
    assert_fault_reported(server, model, code_name, words)
    assert_recovers(server, model)


def test_load_that_raises_is_reported_and_recovers(server):
    faulty.export_failing_init(str(server.base / "raises"), 2)
    assert_fault_reported(server, "raises", "INVALID_ARGUMENT", faulty.FAILING_INIT_MESSAGE)
    assert_recovers(server, "raises")


def test_load_that_hangs_times_out_and_recovers(server):
    faulty.export_hanging_init(str(server.base / "hangs"), 2)
    assert wait_for(lambda: version_state(server, "hangs", 2) is not None)
    assert predict(server, "hangs") == (1, 2.0), "version 1 answers while 2 hangs"
    assert_fault_reported(server, "hangs", "DEADLINE_EXCEEDED", f"load timeout of {LOAD_TIMEOUT} s")
    assert_recovers(server, "hangs")


def test_base_path_that_vanishes_and_returns(server):
    path = server.base / "vanish"
    away = server.base / "vanish-away"
    os.rename(path, away)

    def failed_polls() -> int:
        return server.log_path.read_text().count(f"cannot list base path {path}")

    try:
        before = failed_polls()
        assert wait_for(lambda: failed_polls() >= before + 3), "three polls without the directory"
        assert predict(server, "vanish") == (1, 2.0)
        assert rest_status(server, "vanish")[1]["state"] == "AVAILABLE"
    finally:
        os.rename(away, path)
    hp.export_half_plus_two_tf1(str(path), 2, b=20.0)
    assert wait_for(lambda: predict(server, "vanish") == (2, 21.0)), server.log_tail()


def test_an_unreadable_entry_in_the_base_path_hides_no_version_and_is_logged_once(server):
    base = server.base / "loop"
    os.symlink("5", base / "5")  # a digit-named symlink loop: its type cannot be read
    hp.export_half_plus_two_tf1(str(base), 2, b=20.0)
    assert wait_for(lambda: predict(server, "loop") == (2, 21.0)), server.log_tail()
    hp.export_half_plus_two_tf1(str(base), 3, b=30.0)  # one more poll after the first
    assert wait_for(lambda: predict(server, "loop") == (3, 31.0)), server.log_tail()
    log = server.log_path.read_text()
    assert log.count(f"skipping {base / '5'} of servable loop") == 1, server.log_tail()
    assert f"cannot list base path {base}" not in log


def test_a_failed_version_fixed_without_changing_names_sizes_or_mtimes_is_retried(server):
    """The fix changes only ctimes (as a chmod would: this test runs as root, for
    whom permissions do not fail a load, so it restores the file's bytes and mtime)."""
    staged = hp.export_half_plus_two_tf1(str(server.base / "ctime-staging"), 2, b=20.0)
    pb = os.path.join(staged, "saved_model.pb")
    with open(pb, "rb") as f:
        good = f.read()
    with open(pb, "wb") as f:
        f.write(b"\xff" * len(good))  # same size: not a protobuf
    seen = os.stat(pb)
    os.rename(staged, server.base / "ctime" / "2")
    assert_fault_reported(server, "ctime", "FAILED_PRECONDITION", "saved_model.pb")

    fixed = server.base / "ctime" / "2" / "saved_model.pb"
    fixed.write_bytes(good)
    os.utime(fixed, ns=(seen.st_atime_ns, seen.st_mtime_ns))
    assert (os.stat(fixed).st_size, os.stat(fixed).st_mtime_ns) == (seen.st_size, seen.st_mtime_ns)
    assert wait_for(lambda: predict(server, "ctime") == (2, 21.0)), server.log_tail()
    assert "Loading servable {name: ctime version: 2} again" in server.log_path.read_text()


def test_config_file_replaced_by_garbage_keeps_old_config(server):
    def rejections():
        return server.log_path.read_text().count("Rejected new model config")

    before = rejections()
    server.config.write_bytes(b"model_config_list { config { name: \x00\xff garbage")
    assert wait_for(lambda: rejections() > before), server.log_tail()
    assert "Invalid protobuf file" in server.log_path.read_text(), "the log says what is wrong"
    for name in MODELS:
        assert predict(server, name)[0] >= 1, name
    code, document = server.json("GET", "/v1/models/garbage")
    assert code == 200, document

    late = server.base / "late"
    hp.export_half_plus_two_tf1(str(late), 7, b=70.0)
    server.config.write_text(config_text(server.base, (*MODELS, "late")))
    assert wait_for(lambda: _answers(server, "late")), server.log_tail()
    assert predict(server, "late") == (7, 71.0)
    assert json.loads(server.request("GET", "/v1/models/late")[2])["model_version_status"][0][
        "state"
    ] == ("AVAILABLE")


def _answers(server, model):
    try:
        predict(server, model)
        return True
    except grpc.RpcError:
        return False


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
