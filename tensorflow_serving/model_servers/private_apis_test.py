"""The private APIs of grpcio and uvicorn that the server builds on are still there.

Two modules reach below their library's public API, for speed:
- model_servers/inline_grpc_server.py runs handlers on grpcio's completion
  queue through grpcio's private Cython layer, `grpc._cython.cygrpc`;
- model_servers/rest/inline_protocol.py subclasses uvicorn's HttpToolsProtocol
  and reads and overrides the attributes it keeps per connection and request.

Neither library promises to keep these names, so requirements.txt pins both
packages. These tests fail loudly, naming the pinned version, when the
installed version differs from the pin or when a name the server uses is gone:
upgrade the pin only together with those two modules.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import sys

import grpc
import pytest

from tensorflow_serving.test_util import testing

# --- grpcio --------------------------------------------------------------------------------


def _cygrpc_names_in_source(module) -> set[tuple[str, str | None]]:
    """Every `cygrpc.Name` and `cygrpc.Name.member` the module's source uses."""
    tree = ast.parse(inspect.getsource(module))
    found: set[tuple[str, str | None]] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        if isinstance(node.value, ast.Name) and node.value.id == "cygrpc":
            found.add((node.attr, None))
        elif (
            isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "cygrpc"
        ):
            found.add((node.value.attr, node.attr))
    return found


def _advice(problem: str, package: str, module: str, uses: str, fallback: str = "") -> str:
    """What failed, which module depends on it, and the two ways out."""
    pinned = testing.pinned_version(package)
    return (
        f"{problem}. model_servers/{module} uses {uses} as {package}=={pinned} (pinned in "
        f"requirements.txt) has it. Install {package}=={pinned}, or port {module} to the new "
        f"{package} and move the pin with it.{fallback}"
    )


def _grpcio_advice(problem: str) -> str:
    return _advice(
        problem,
        "grpcio",
        "inline_grpc_server.py",
        "grpcio's private grpc._cython.cygrpc API",
        " (--grpc_server=grpcio serves without the private API.)",
    )


def test_installed_grpcio_is_the_pinned_one():
    pinned = testing.pinned_version("grpcio")
    assert grpc.__version__ == pinned, _grpcio_advice(f"grpcio {grpc.__version__} is installed")


def test_cygrpc_has_every_name_inline_grpc_server_uses():
    try:
        from grpc._cython import cygrpc
    except ImportError as error:
        pytest.fail(_grpcio_advice(f"grpc._cython.cygrpc does not import: {error}"))
    from tensorflow_serving.model_servers import inline_grpc_server

    used = _cygrpc_names_in_source(inline_grpc_server)
    assert ("CompletionQueue", None) in used, "the source scan found nothing: is it broken?"
    used |= {
        (name, member)
        for name, members in inline_grpc_server.PRIVATE_CYGRPC_API.items()
        for member in (None, *members)
    }
    missing = []
    for name, member in sorted(used, key=str):
        owner = getattr(cygrpc, name, None)
        if owner is None:
            missing.append(f"cygrpc.{name}")
        elif member is not None and not hasattr(owner, member):
            missing.append(f"cygrpc.{name}.{member}")
    if not hasattr(grpc.local_server_credentials(), "_credentials"):
        missing.append("grpc.ServerCredentials._credentials")
    assert not missing, _grpcio_advice(f"grpcio {grpc.__version__} lacks {', '.join(missing)}")


# --- uvicorn -------------------------------------------------------------------------------

# What rest/inline_protocol.py relies on. Listed here rather than imported from
# it, so that these checks run whatever that module's name and place.
_PROTOCOL_METHODS = (  # overridden (and called through super()) or called
    "connection_made",
    "on_message_begin",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "on_response_complete",
    "connection_lost",
    "_start_asgi_task",
    "send_400_response",
)
_PROTOCOL_ATTRIBUTES = (  # read or set on the protocol instance
    "cycle",
    "parser",
    "expect_100_continue",
    "limit_concurrency",
    "headers",
    "url",
    "server_state",
    "connections",
    "transport",
    "loop",
    "flow",
    "pipeline",
    "logger",
)
_SERVER_STATE_ATTRIBUTES = ("default_headers", "total_requests")
# The attributes uvicorn's protocol (and ours) read from a request's cycle;
# the inline cycle keeps the same ones.
_CYCLE_ATTRIBUTES = (
    "body",
    "more_body",
    "message_event",
    "response_started",
    "response_complete",
    "keep_alive",
    "disconnected",
)


def _uvicorn_advice(problem: str) -> str:
    return _advice(
        problem,
        "uvicorn",
        "rest/inline_protocol.py",
        "the private attributes of uvicorn's HttpToolsProtocol",
    )


def test_installed_uvicorn_is_the_pinned_one():
    import uvicorn

    pinned = testing.pinned_version("uvicorn")
    assert uvicorn.__version__ == pinned, _uvicorn_advice(
        f"uvicorn {uvicorn.__version__} is installed"
    )


def _new_protocol(loop: asyncio.AbstractEventLoop):
    """An HttpToolsProtocol as uvicorn makes one for a connection, before any bytes."""
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    async def app(scope, receive, send):  # never called
        raise AssertionError("no request is made")

    config = Config(app=app, http="httptools", log_config=None)
    return HttpToolsProtocol(config=config, server_state=ServerState(), app_state={}, _loop=loop)


def test_uvicorn_protocol_has_every_name_the_inline_predict_path_uses():
    import uvicorn

    try:
        from uvicorn.protocols.http import httptools_impl
    except ImportError as error:
        pytest.fail(_uvicorn_advice(f"uvicorn.protocols.http.httptools_impl: {error}"))
    missing = [
        f"{name}"
        for name in ("HttpToolsProtocol", "RequestResponseCycle", "STATUS_LINE")
        if not hasattr(httptools_impl, name)
    ]
    assert not missing, _uvicorn_advice(f"uvicorn {uvicorn.__version__} lacks {missing}")
    assert httptools_impl.STATUS_LINE[200].startswith(b"HTTP/1.1 200 OK"), _uvicorn_advice(
        "STATUS_LINE no longer maps a status to its status line"
    )

    protocol_class = httptools_impl.HttpToolsProtocol
    missing = [
        f"HttpToolsProtocol.{name}"
        for name in _PROTOCOL_METHODS
        if not callable(getattr(protocol_class, name, None))
    ]
    loop = asyncio.new_event_loop()
    try:
        protocol = _new_protocol(loop)
        protocol.on_message_begin()  # sets the per-request attributes (url, headers)
        missing += [
            f"HttpToolsProtocol().{name}"
            for name in _PROTOCOL_ATTRIBUTES
            if not hasattr(protocol, name)
        ]
        missing += [
            f"ServerState().{name}"
            for name in _SERVER_STATE_ATTRIBUTES
            if not hasattr(protocol.server_state, name)
        ]
    finally:
        loop.close()
    cycle_init = inspect.getsource(httptools_impl.RequestResponseCycle.__init__)
    missing += [
        f"RequestResponseCycle.{name}"
        for name in _CYCLE_ATTRIBUTES
        if f"self.{name} =" not in cycle_init
    ]
    assert not missing, _uvicorn_advice(f"uvicorn {uvicorn.__version__} lacks {', '.join(missing)}")


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
