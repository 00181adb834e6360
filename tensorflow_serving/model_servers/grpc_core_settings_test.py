"""The server's gRPC core settings reach gRPC: they are in the environment when
the server's entry point first imports grpc, and a user's own setting wins."""

import sys

from tensorflow_serving.model_servers import grpc_core_settings
from tensorflow_serving.test_util import testing

# Run in a fresh interpreter: records GRPC_EXPERIMENTS at the moment grpc is
# first imported, then imports the server's entry point.
_PROBE = """
import importlib.abc, os, sys
seen = []
class Probe(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "grpc" and not seen:
            seen.append(os.environ.get("GRPC_EXPERIMENTS"))
        return None
sys.meta_path.insert(0, Probe())
import tensorflow_serving.model_servers.main
print(seen[0] if seen else "grpc not imported")
"""


def _experiments_seen_by_grpc(user_setting: str | None) -> str:
    return testing.probe_fresh_interpreter(_PROBE, "GRPC_EXPERIMENTS", user_setting)


def test_the_server_entry_point_sets_experiments_before_importing_grpc():
    assert _experiments_seen_by_grpc(None) == grpc_core_settings.SERVER_EXPERIMENTS


def test_a_users_own_setting_is_kept():
    assert _experiments_seen_by_grpc("-some_experiment") == "-some_experiment"


def test_choose_server_experiments_fills_only_an_unset_variable():
    environ = {}
    grpc_core_settings.choose_server_experiments(environ)
    assert environ == {"GRPC_EXPERIMENTS": "-event_engine_listener"}
    environ = {"GRPC_EXPERIMENTS": ""}
    grpc_core_settings.choose_server_experiments(environ)
    assert environ == {"GRPC_EXPERIMENTS": ""}


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
