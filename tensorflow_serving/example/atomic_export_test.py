"""atomic_export publishes a version whole or not at all, even when the exporter is killed."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tensorflow_serving.example import atomic_export
from tensorflow_serving.test_util import testing


def _numeric_dirs(base):
    return sorted(name for name in os.listdir(base) if name.isdigit())


def _write_model(export_dir, contents="v"):
    os.makedirs(os.path.join(export_dir, "variables"))
    with open(os.path.join(export_dir, "saved_model.pb"), "w") as f:
        f.write(contents)


def test_publishes_the_finished_directory_under_its_version(tmp_path):
    base = str(tmp_path / "model")
    with atomic_export.atomic_export(base, 3) as export_dir:
        assert not os.path.exists(export_dir)  # SavedModelBuilder wants to create it
        _write_model(export_dir)
        assert _numeric_dirs(base) == []  # nothing visible while writing
    assert _numeric_dirs(base) == ["3"]
    assert os.listdir(base) == ["3"]  # and no temporary leftovers
    assert open(os.path.join(base, "3", "saved_model.pb")).read() == "v"


def test_refuses_an_existing_version_without_overwrite(tmp_path):
    base = str(tmp_path)
    os.makedirs(os.path.join(base, "1"))
    with pytest.raises(
        atomic_export.VersionExistsError, match=r"version 1 already exists .*--overwrite"
    ):
        with atomic_export.atomic_export(base, 1) as export_dir:
            _write_model(export_dir)
    with pytest.raises(atomic_export.VersionExistsError):
        atomic_export.check_can_export(base, 1)


def test_version_that_appears_while_exporting_is_not_clobbered(tmp_path):
    base = str(tmp_path)
    with pytest.raises(atomic_export.VersionExistsError, match="appeared while exporting"):
        with atomic_export.atomic_export(base, 2) as export_dir:
            _write_model(export_dir, "new")
            _write_model(os.path.join(base, "2"), "someone else's")
    assert open(os.path.join(base, "2", "saved_model.pb")).read() == "someone else's"
    assert os.listdir(base) == ["2"]


def test_overwrite_replaces_the_version(tmp_path):
    base = str(tmp_path)
    with atomic_export.atomic_export(base, 1) as export_dir:
        _write_model(export_dir, "old")
    with atomic_export.atomic_export(base, 1, overwrite=True) as export_dir:
        _write_model(export_dir, "new")
    assert open(os.path.join(base, "1", "saved_model.pb")).read() == "new"
    assert os.listdir(base) == ["1"]


def test_failed_export_leaves_nothing_behind(tmp_path):
    base = str(tmp_path)
    with pytest.raises(RuntimeError, match="training blew up"):
        with atomic_export.atomic_export(base, 4) as export_dir:
            _write_model(export_dir)
            raise RuntimeError("training blew up")
    assert os.listdir(base) == []


def test_export_that_writes_nothing_publishes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="wrote nothing"):
        with atomic_export.atomic_export(str(tmp_path), 5):
            pass
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("version", [0, -1, 1.5, True, "2"])
def test_versions_must_be_positive_integers(tmp_path, version):
    with pytest.raises(ValueError, match="must be a positive integer"):
        atomic_export.version_path(str(tmp_path), version)


def test_dir_name_may_zero_pad_but_must_spell_the_version(tmp_path):
    assert atomic_export.version_path("/m", 123, "00000123") == "/m/00000123"
    with pytest.raises(ValueError, match="does not spell version 123"):
        atomic_export.version_path("/m", 123, "124")


_SLOW_EXPORTER = textwrap.dedent(
    """
    import os, sys, time
    from tensorflow_serving.example import atomic_export

    with atomic_export.atomic_export(sys.argv[1], 7) as export_dir:
        os.makedirs(os.path.join(export_dir, "variables"))
        for i in range(1000):
            with open(os.path.join(export_dir, "variables", f"shard{i}"), "w") as f:
                f.write("x" * 1000)
            if i == 3:
                print("writing", flush=True)
            time.sleep(0.01)
    """
)


def test_killed_exporter_leaves_no_numeric_directory(tmp_path):
    base = str(tmp_path / "model")
    env = testing.child_env()
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_EXPORTER, base],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "writing"  # mid-write now
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    leftovers = os.listdir(base)
    assert _numeric_dirs(base) == []
    assert len(leftovers) == 1 and leftovers[0].startswith(atomic_export.TEMP_PREFIX)

    # The next export into that base path clears the dead exporter's leftovers.
    with atomic_export.atomic_export(base, 7) as export_dir:
        _write_model(export_dir)
    assert os.listdir(base) == ["7"]


def test_temp_dirs_of_live_exporters_are_left_alone(tmp_path):
    base = str(tmp_path)
    live = os.path.join(base, f"{atomic_export.TEMP_PREFIX}1-{os.getpid()}-abc")
    os.makedirs(live)
    assert atomic_export.remove_stale_temp_dirs(base) == []
    assert os.path.isdir(live)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
