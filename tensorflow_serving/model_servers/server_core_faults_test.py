"""ServerCore under faults on disk and in loading: the serving version keeps
answering, the fault shows in GetModelStatus and in the log, and the model
recovers by itself once the files are fixed.

The binary-level counterpart (REST status, the server's own log, the
--load_timeout_seconds flag) is faults_e2e_test.py.
"""

import logging
import os
import shutil
import sys
import threading

import grpc
import numpy as np
import pytest

from tensorflow_serving.apis import model_pb2
from tensorflow_serving.core.aspired_versions_manager import ManagerOptions
from tensorflow_serving.core.servable_state import ManagerState
from tensorflow_serving.model_servers.server_core import (
    ServerCore,
    ServerCoreOptions,
    single_model_config,
)
from tensorflow_serving.servables.tensorflow import predict_util
from tensorflow_serving.servables.tensorflow.saved_model_bundle_source_adapter import (
    BundleOptions,
)
from tensorflow_serving.servables.tensorflow.testdata import export_faulty_model as faulty
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.util.executors import CALLING_THREAD

POLL = 0.1


class Tracked:
    """A loaded bundle that remembers whether it was freed."""

    def __init__(self, bundle):
        self._bundle = bundle
        self.signatures = bundle.signatures
        self.meta_graph_def = bundle.meta_graph_def
        self.export_dir = bundle.export_dir
        self.closed = False

    def signature(self, key):
        return self._bundle.signature(key)

    def submit(self, signature, inputs, output_aliases, runner):
        return self._bundle.submit(signature, inputs, output_aliases, runner)

    def close(self):
        self.closed = True
        self._bundle.close()


class LoadHook:
    """BundleOptions.wrap: lets a test stall chosen versions in the middle of their load."""

    def __init__(self):
        self.stall = set()  # versions whose load blocks until `release` is set
        self.entered = threading.Event()
        self.release = threading.Event()
        self.made: dict[int, list[Tracked]] = {}

    def __call__(self, servable_id, bundle):
        if servable_id.version in self.stall:
            self.entered.set()
            self.release.wait(60)
        tracked = Tracked(bundle)
        self.made.setdefault(servable_id.version, []).append(tracked)
        return tracked


def run_x(handle, values):
    """The default signature's outputs for input `x`, run on the calling thread."""
    _, outputs = predict_util.submit_predict(
        handle, "", {"x": np.array(values, np.float32)}, (), CALLING_THREAD
    )
    return outputs.result()


def make_core(config, *, retries=0, load_timeout=0.0, wrap=None, **kw) -> ServerCore:
    return ServerCore.create(
        ServerCoreOptions(
            model_server_config=config,
            file_system_poll_wait_seconds=POLL,
            manager=ManagerOptions(
                max_num_load_retries=retries,
                load_retry_interval_micros=10_000,
                load_timeout_seconds=load_timeout,
            ),
            bundle=BundleOptions(wrap=wrap),
            **kw,
        )
    )


def spec(name="m", version=None):
    s = model_pb2.ModelSpec(name=name)
    if version is not None:
        s.version.value = version
    return s


def predict_y(core, name="m"):
    with core.servable_handle(spec(name)) as handle:
        out = run_x(handle, [[2.0]])
        return handle.version, float(out["y"][0, 0])


def serving(core, name="m"):
    return sorted(core.manager.serving_versions(name) or {})


def state_of(core, version, name="m"):
    state = core.monitor.versions(name).get(version)
    return None if state is None else state.state


def version_status(core, version, name="m"):
    (entry,) = core.model_status(spec(name, version)).model_version_status
    return entry


def wait_for(predicate, timeout=60):
    return testing.wait_for(predicate, timeout, interval=0.02)


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "m"
    path.mkdir()
    return str(path)


@pytest.fixture
def log(caplog):
    caplog.set_level(logging.INFO)
    return caplog


def export_broken(base, version, kind):
    if kind == "failing_init":
        return faulty.export_failing_init(base, version)
    return hp.export_corrupt_version(base, version, kind)


@pytest.mark.parametrize(
    "kind,code,words",
    [
        ("garbage_saved_model", grpc.StatusCode.FAILED_PRECONDITION, "saved_model"),
        ("missing_variables", grpc.StatusCode.FAILED_PRECONDITION, "variables"),
        ("empty", grpc.StatusCode.NOT_FOUND, "Could not find SavedModel"),
        ("failing_init", grpc.StatusCode.INVALID_ARGUMENT, faulty.FAILING_INIT_MESSAGE),
    ],
)
def test_broken_new_version_keeps_old_answering_and_recovers_when_fixed(
    base, log, kind, code, words
):
    hp.export_half_plus_two_tf1(base, 1, b=1.0)
    core = make_core(single_model_config("m", base))
    try:
        export_broken(base, 2, kind)
        assert wait_for(lambda: state_of(core, 2) == ManagerState.END)
        assert predict_y(core) == (1, 2.0), "the old version keeps answering"
        entry = version_status(core, 2)
        assert entry.state == ManagerState.END
        assert entry.status.error_code == code.value[0], entry.status
        assert words in entry.status.error_message
        assert "Loading servable {name: m version: 2} failed" in log.text
        assert words in log.text

        hp.export_half_plus_two_tf1(base, 2, b=20.0, overwrite=True)
        assert wait_for(lambda: serving(core) == [2]), "fixed files load by themselves"
        assert predict_y(core) == (2, 21.0)
        assert version_status(core, 2).status.error_code == 0
    finally:
        core.stop()


def test_failure_is_visible_while_retries_are_pending(base):
    """With retries a minute apart (upstream's default) the reason shows at once."""
    hp.export_half_plus_two_tf1(base, 1)
    core = ServerCore.create(
        ServerCoreOptions(
            model_server_config=single_model_config("m", base),
            file_system_poll_wait_seconds=POLL,
            manager=ManagerOptions(max_num_load_retries=5, load_retry_interval_micros=60 * 10**6),
        )
    )
    try:
        hp.export_corrupt_version(base, 2)
        assert wait_for(lambda: getattr(core.monitor.versions("m").get(2), "error", None))
        entry = version_status(core, 2)
        assert entry.state == ManagerState.LOADING, "still to be retried"
        assert "saved_model" in entry.status.error_message
        assert predict_y(core)[0] == 1
    finally:
        core.stop()


def record_aspired(core) -> list[list[int]]:
    """The aspired versions of "m" the source hands the manager from now on, in order."""
    handed: list[list[int]] = []
    set_aspired_versions = core.manager.set_aspired_versions

    def recorded(name, versions):
        versions = list(versions)
        if name == "m":
            handed.append(sorted(sid.version for sid, _ in versions))
        set_aspired_versions(name, versions)

    core.manager.set_aspired_versions = recorded
    return handed


def test_version_deleted_while_loading_is_never_served(base, log):
    hp.export_half_plus_two_tf1(base, 1, b=1.0)
    hook = LoadHook()
    hook.stall.add(2)
    core = make_core(single_model_config("m", base), wrap=hook)
    states_of_2 = []
    core.monitor.add_listener(
        lambda state: states_of_2.append(state.state) if state.id.version == 2 else None
    )
    try:
        handed = record_aspired(core)
        hp.export_half_plus_two_tf1(base, 2, b=20.0)
        assert hook.entered.wait(60), "version 2 started loading"
        shutil.rmtree(os.path.join(base, "2"))
        assert wait_for(lambda: handed and handed[-1] == [1]), "the source has seen it go"
        assert predict_y(core) == (1, 2.0), "version 1 answers while 2 loads"
        hook.release.set()
        assert wait_for(lambda: state_of(core, 2) == ManagerState.END)
        assert ManagerState.AVAILABLE not in states_of_2, (
            "a version whose directory is gone must not serve, even briefly"
        )
        assert serving(core) == [1]
        assert predict_y(core) == (1, 2.0)
        assert [t.closed for t in hook.made[2]] == [True], "its session was freed"
        assert "stopped being aspired while it loaded" in log.text

        hp.export_half_plus_two_tf1(base, 2, b=30.0)
        assert wait_for(lambda: serving(core) == [2]), "the version loads when it returns"
        assert predict_y(core) == (2, 31.0)
    finally:
        hook.release.set()
        core.stop()


def test_hanging_load_times_out_old_version_answers_and_fixed_files_load(base, log):
    hp.export_half_plus_two_tf1(base, 1, b=1.0)
    hook = LoadHook()
    hook.stall.add(2)
    core = make_core(single_model_config("m", base), retries=1, load_timeout=0.5, wrap=hook)
    try:
        hp.export_half_plus_two_tf1(base, 2, b=20.0)
        assert hook.entered.wait(60)
        assert predict_y(core) == (1, 2.0), "version 1 answers during the hang"
        assert wait_for(lambda: state_of(core, 2) == ManagerState.END, timeout=30)
        entry = version_status(core, 2)
        assert entry.status.error_code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
        assert "load timeout of 0.5 s" in entry.status.error_message
        assert "load timeout of 0.5 s" in log.text
        assert predict_y(core) == (1, 2.0)

        # The stalled loads finish late: their sessions are freed, nothing serves them.
        hook.release.set()
        assert wait_for(lambda: len(hook.made.get(2, [])) == 2)
        assert wait_for(lambda: all(t.closed for t in hook.made[2]))
        assert serving(core) == [1]
        assert "finished loading after its 0.5 s load timeout" in log.text

        hook.stall.clear()
        hp.export_half_plus_two_tf1(base, 2, b=30.0, overwrite=True)
        assert wait_for(lambda: serving(core) == [2]), "fixed files load by themselves"
        assert predict_y(core) == (2, 31.0)
    finally:
        hook.release.set()
        core.stop()


def test_base_path_that_vanishes_and_returns(tmp_path, base, log):
    hp.export_half_plus_two_tf1(base, 1, b=1.0)
    core = make_core(single_model_config("m", base))
    away = str(tmp_path / "away")
    try:
        os.rename(base, away)
        assert wait_for(lambda: log.text.count(f"cannot list base path {base}") >= 3), (
            "three polls without the directory"
        )
        assert predict_y(core) == (1, 2.0), "the loaded version keeps answering"
        assert version_status(core, 1).state == ManagerState.AVAILABLE

        os.rename(away, base)
        hp.export_half_plus_two_tf1(base, 2, b=20.0)
        assert wait_for(lambda: serving(core) == [2]), "polling resumes when the path returns"
        assert predict_y(core) == (2, 21.0)
    finally:
        core.stop()


def test_config_file_replaced_by_garbage_keeps_old_config(tmp_path, base, log):
    hp.export_half_plus_two_tf1(base, 1, b=1.0)
    other = str(tmp_path / "other")
    hp.export_half_plus_two_tf1(other, 5, b=50.0)
    config_path = tmp_path / "models.config"
    good = f'model_config_list {{ config {{ name: "m" base_path: "{base}" }} }}'
    config_path.write_text(good)
    core = make_core(
        single_model_config("unused", "/nowhere"),
        model_config_file=str(config_path),
        model_config_file_poll_wait_seconds=POLL,
    )
    try:
        assert core.model_names() == ("m",)
        garbage = {
            # caught half-written
            b"model_config_list { config { name: 'm' base_path: ": "Invalid protobuf file",
            b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe garbage": "Invalid protobuf file",
            # parses, but no base path
            b"model_config_list { config { name: 'm' } }": "empty base_path",
            b"": "Taking no action for empty config",  # emptied: as upstream
        }
        for text, words in garbage.items():
            log.clear()
            config_path.write_bytes(text)
            expected = [words] + ([f"Rejected new model config {config_path}"] if text else [])
            assert wait_for(lambda e=expected: all(line in log.text for line in e)), text
            assert core.model_names() == ("m",), text
            assert predict_y(core) == (1, 2.0), text

        config_path.write_text(
            good[: -len(" }")] + f' config {{ name: "other" base_path: "{other}" }} }}'
        )
        # The new version serves a moment before reload_config records the new config.
        assert wait_for(
            lambda: serving(core, "other") == [5] and core.model_names() == ("m", "other")
        ), "a fixed file is applied"
        assert predict_y(core, "other") == (5, 51.0)
    finally:
        core.stop()


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
