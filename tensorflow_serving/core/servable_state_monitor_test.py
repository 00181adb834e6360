"""The monitor keeps the last state of each version, errors included."""

import sys
import threading

from tensorflow_serving.core.servable_state import ManagerState, ServableId, ServableState
from tensorflow_serving.core.servable_state_monitor import ServableStateMonitor
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status


def test_keeps_last_state_and_error_per_version():
    monitor = ServableStateMonitor()
    seen = []
    monitor.add_listener(seen.append)
    monitor.publish(ServableState(ServableId("m", 1), ManagerState.AVAILABLE))
    error = status.not_found("gone")
    monitor.publish(ServableState(ServableId("m", 2), ManagerState.END, error))
    assert monitor.available_versions("m") == [1]
    assert monitor.versions("m")[2].error is error
    assert len(seen) == 2
    assert monitor.model_names() == ["m"]


def test_wait_until_wakes_on_publish():
    monitor = ServableStateMonitor()
    timer = threading.Timer(
        0.05,
        monitor.publish,
        [ServableState(ServableId("m", 1), ManagerState.AVAILABLE)],
    )
    timer.start()
    assert monitor.wait_until(lambda: monitor.available_versions("m") == [1], timeout=5)
    assert not monitor.wait_until(lambda: False, timeout=0.05)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
