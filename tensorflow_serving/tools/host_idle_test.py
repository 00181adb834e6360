import os
import sys

from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import host_idle


def _sysfs(root, driver: str | None, poll_ns: str | None) -> str:
    """A fake /sys with the two files the benchmark reads (None: the file is absent)."""
    if driver is not None:
        os.makedirs(root / "devices/system/cpu/cpuidle")
        (root / "devices/system/cpu/cpuidle/current_driver").write_text(driver + "\n")
    if poll_ns is not None:
        os.makedirs(root / "module/haltpoll/parameters")
        (root / "module/haltpoll/parameters/guest_halt_poll_ns").write_text(poll_ns + "\n")
    return str(root)


def test_haltpoll_at_zero_warns_when_one_client_runs(tmp_path):
    settings = host_idle.read_idle_settings(_sysfs(tmp_path, "haltpoll", "0"))
    assert settings == {"cpuidle_driver": "haltpoll", "guest_halt_poll_ns": 0}
    warning = host_idle.one_client_warning(settings, [1, 32])
    assert warning is not None and "guest_halt_poll_ns 0" in warning
    # Only the one-client rows pay a wake-up per request.
    assert host_idle.one_client_warning(settings, [32]) is None


def test_polling_vcpus_and_bare_metal_say_nothing(tmp_path):
    polling = host_idle.read_idle_settings(_sysfs(tmp_path / "a", "haltpoll", "200000"))
    assert polling["guest_halt_poll_ns"] == 200000
    assert host_idle.one_client_warning(polling, [1]) is None
    metal = host_idle.read_idle_settings(_sysfs(tmp_path / "b", "intel_idle", None))
    assert metal == {"cpuidle_driver": "intel_idle", "guest_halt_poll_ns": None}
    assert host_idle.one_client_warning(metal, [1]) is None


def test_unreadable_settings_are_none_not_an_error(tmp_path):
    settings = host_idle.read_idle_settings(_sysfs(tmp_path, None, "garbage"))
    assert settings == {"cpuidle_driver": None, "guest_halt_poll_ns": None}
    assert host_idle.one_client_warning(settings, [1]) is None


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
