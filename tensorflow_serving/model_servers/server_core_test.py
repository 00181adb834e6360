"""ServerCore against real SavedModels on disk: policies, swaps, faults, config, labels."""

import shutil
import sys
import threading
import time

import numpy as np
import pytest
from google.protobuf import text_format

from tensorflow_serving.apis import model_pb2
from tensorflow_serving.core.aspired_versions_manager import LoadedServable, ManagerOptions
from tensorflow_serving.core.servable_state import ManagerState, ServableId
from tensorflow_serving.model_servers.server_core import (
    ModelServerConfig,
    ServerCore,
    ServerCoreOptions,
    read_model_server_config,
    single_model_config,
)
from tensorflow_serving.servables.tensorflow import predict_util
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status
from tensorflow_serving.util.executors import CALLING_THREAD

POLL = 0.1


def run_x(handle, values):
    """The default signature's outputs for input `x`, run on the calling thread."""
    _, outputs = predict_util.submit_predict(
        handle, "", {"x": np.array(values, np.float32)}, (), CALLING_THREAD
    )
    return outputs.result()


def make_core(config, **kw) -> ServerCore:
    options = ServerCoreOptions(
        model_server_config=config,
        file_system_poll_wait_seconds=POLL,
        manager=ManagerOptions(max_num_load_retries=1, load_retry_interval_micros=10_000),
        **kw,
    )
    return ServerCore.create(options)


def spec(name, version=None, label=None):
    s = model_pb2.ModelSpec(name=name)
    if version is not None:
        s.version.value = version
    if label is not None:
        s.version_label = label
    return s


def predict_y(core, name="m", **kw):
    with core.servable_handle(spec(name, **kw)) as handle:
        out = run_x(handle, [[2.0]])
        return handle.version, float(out["y"][0, 0])


def serving(core, name="m"):
    return sorted(core.manager.serving_versions(name) or {})


def wait_for(predicate, timeout=60):
    return testing.wait_for(predicate, timeout, interval=0.02)


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "m"
    path.mkdir()
    return str(path)


def config_with_policy(base, policy_text):
    config = single_model_config("m", base)
    text_format.Parse(policy_text, config.model_config_list.config[0].model_version_policy)
    return config


def test_latest_policy_follows_new_versions_and_deletions(base):
    hp.export_half_plus_two_tf1(base, 1, b=1.0)
    core = make_core(single_model_config("m", base))
    try:
        assert predict_y(core) == (1, 2.0)
        hp.export_half_plus_two_tf1(base, 2, b=10.0)
        assert wait_for(lambda: serving(core) == [2])
        assert predict_y(core) == (2, 11.0)
        shutil.rmtree(f"{base}/2")
        assert wait_for(lambda: serving(core) == [1])
    finally:
        core.stop()


@pytest.mark.parametrize(
    "policy,expected",
    [
        ("latest { num_versions: 2 }", [2, 3]),
        ("all {}", [1, 2, 3]),
        ("specific { versions: 1 versions: 3 }", [1, 3]),
    ],
)
def test_version_policies_load_exactly_their_versions(base, policy, expected):
    for v in (1, 2, 3):
        hp.export_half_plus_two_tf1(base, v, b=float(v))
    core = make_core(config_with_policy(base, policy))
    try:
        assert serving(core) == expected
        assert predict_y(core, version=expected[0]) == (expected[0], 1.0 + expected[0])
        with pytest.raises(status.ServingError) as raised:
            core.servable_handle(spec("m", version=99))
        assert raised.value.http_status() == 404
        assert "Specific(m, 99)" in raised.value.message
    finally:
        core.stop()


def test_corrupt_new_version_keeps_old_serving_and_recovers_when_fixed(base):
    hp.export_half_plus_two_tf1(base, 2)
    core = make_core(single_model_config("m", base))
    try:
        hp.export_corrupt_version(base, 3)
        assert wait_for(
            lambda: (
                core.monitor.versions("m").get(3) is not None
                and core.monitor.versions("m")[3].state == ManagerState.END
            )
        )
        assert predict_y(core)[0] == 2
        status_3 = core.model_status(spec("m", version=3)).model_version_status[0]
        assert status_3.status.error_message, "the failure must be visible in GetModelStatus"
        hp.export_half_plus_two_tf1(base, 3, b=30.0, overwrite=True)
        assert wait_for(lambda: serving(core) == [3])
        assert predict_y(core) == (3, 31.0)
    finally:
        core.stop()


def test_missing_variables_is_reported_not_served(base):
    hp.export_half_plus_two_tf1(base, 1)
    hp.export_corrupt_version(base, 2, "missing_variables")
    core = make_core(single_model_config("m", base))
    try:
        assert wait_for(
            lambda: (
                core.monitor.versions("m").get(2) is not None
                and core.monitor.versions("m")[2].state == ManagerState.END
            )
        )
        # Version 1 was never aspired (latest 1), so nothing serves: the error says why.
        reasons = core.readiness()
        assert reasons and "version 2 END" in reasons[0]
    finally:
        core.stop()


def test_config_reload_adds_and_removes_models(tmp_path):
    for name in ("a", "b"):
        hp.export_half_plus_two_tf1(str(tmp_path / name), 1)
    config = ModelServerConfig()
    model = config.model_config_list.config.add(name="a", base_path=str(tmp_path / "a"))
    model.model_platform = "tensorflow"
    core = make_core(config)
    try:
        assert serving(core, "a") == [1]
        new = ModelServerConfig()
        new.model_config_list.config.add(name="b", base_path=str(tmp_path / "b"))
        core.reload_config(new)
        assert serving(core, "b") == [1]
        assert wait_for(lambda: serving(core, "a") == [])
        with pytest.raises(status.ServingError, match="Latest\\(a\\)"):
            core.servable_handle(spec("a"))
    finally:
        core.stop()


def test_bad_config_is_rejected_and_old_one_kept(tmp_path, base):
    hp.export_half_plus_two_tf1(base, 1)
    core = make_core(single_model_config("m", base))
    try:
        duplicate = ModelServerConfig()
        for _ in range(2):
            duplicate.model_config_list.config.add(name="m", base_path=base)
        with pytest.raises(status.ServingError, match="multiple times"):
            core.reload_config(duplicate)
        assert core.model_names() == ("m",) and serving(core) == [1]
        garbage = tmp_path / "garbage.config"
        garbage.write_text("model_config_list { config { nme: 'x' } }")
        with pytest.raises(status.ServingError, match="garbage.config"):
            read_model_server_config(str(garbage))
    finally:
        core.stop()


def test_labels_resolve_and_must_point_at_available_versions(base):
    for v in (1, 2):
        hp.export_half_plus_two_tf1(base, v, b=float(v))
    config = config_with_policy(base, "all {}")
    labels = config.model_config_list.config[0].version_labels
    labels["stable"] = 1
    labels["canary"] = 2
    core = make_core(config)
    try:
        assert predict_y(core, label="stable") == (1, 2.0)
        assert predict_y(core, label="canary") == (2, 3.0)
        with pytest.raises(status.ServingError, match="Unrecognized servable version label"):
            core.servable_handle(spec("m", label="nope"))
        bad = config_with_policy(base, "all {}")
        bad.model_config_list.config[0].version_labels["stable"] = 7
        with pytest.raises(status.ServingError, match="not currently available") as raised:
            core.reload_config(bad)
        assert raised.value.http_status() == 400
        assert predict_y(core, label="stable") == (1, 2.0), "old labels stay after a rejection"
    finally:
        core.stop()


def test_labels_for_unavailable_versions_when_allowed(base):
    hp.export_half_plus_two_tf1(base, 1)
    config = single_model_config("m", base)
    config.model_config_list.config[0].version_labels["next"] = 5
    core = make_core(config, allow_version_labels_for_unavailable_models=True)
    try:
        with pytest.raises(status.ServingError, match="Specific\\(m, 5\\)"):
            core.servable_handle(spec("m", label="next"))
    finally:
        core.stop()


def test_tf2_export_serves_too(base):
    hp.export_half_plus_two_tf2(base, 4)
    core = make_core(single_model_config("m", base))
    try:
        with core.servable_handle(spec("m")) as handle:
            out = run_x(handle, [2.0, 4.0])
        np.testing.assert_allclose(out["y"].ravel(), [3.0, 4.0])
    finally:
        core.stop()


def test_soak_ten_swaps_under_traffic_lose_no_request(base):
    """Clients call in a loop while versions 1..11 replace each other."""
    hp.export_half_plus_two_tf1(base, 1, b=1.0)
    core = make_core(config_with_policy(base, "latest { num_versions: 1 }"))
    failures, answers, max_loaded = [], [0], [0]
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                version, y = predict_y(core)
                assert y == 1.0 + version, (version, y)
                answers[0] += 1
            except Exception as error:  # noqa: BLE001 - every failure counts
                failures.append(error)

    def watch_loaded():
        while not stop.is_set():
            max_loaded[0] = max(max_loaded[0], len(serving(core)))
            time.sleep(0.001)

    threads = [threading.Thread(target=client) for _ in range(4)]
    threads.append(threading.Thread(target=watch_loaded))
    for t in threads:
        t.start()
    try:
        for v in range(2, 12):
            hp.export_half_plus_two_tf1(base, v, b=float(v))
            assert wait_for(lambda v=v: serving(core) == [v]), f"version {v} never served alone"
            shutil.rmtree(f"{base}/{v - 1}")
    finally:
        stop.set()
        for t in threads:
            t.join()
        core.stop()
    assert failures == []
    assert answers[0] > 100
    assert max_loaded[0] <= 2, "latest-1 with availability preservation: at most old + new"


class UnloadStartsAfterLookup:
    """A manager whose version is retired (its unload begins) right after a request looks it up.

    The retirement is the unload's first step; the unload then waits for the
    version's users to leave and closes it. A request that looked the version
    up just before must either hold it before that, or not get it at all.
    """

    def __init__(self, servable):
        self.loaded = LoadedServable(ServableId("m", 1), servable)
        self.drained: list[bool] = []

    def serving_versions(self, name):
        versions = {1: self.loaded}
        self.drained.append(self.loaded.retire_and_drain(timeout=0))
        return versions


def test_a_version_whose_unload_began_is_never_handed_to_a_request(base):
    hp.export_half_plus_two_tf1(base, 1)
    core = make_core(single_model_config("m", base))
    real_manager = core.manager
    try:
        fake = UnloadStartsAfterLookup(object())
        core.manager = fake
        with pytest.raises(status.ServingError) as raised:
            core.servable_handle(spec("m"))
        assert raised.value.code.name == "NOT_FOUND"
        assert fake.drained and all(fake.drained), "the unload found no user it must wait for"
        assert fake.loaded.in_flight() == 0
    finally:
        core.manager = real_manager
        core.stop()


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
