"""InlineGrpcServer answers as grpcio's stock server does, seen from a gRPC client.

A small bytes-in/bytes-out service stands in for the model services, so each
test can make a handler block, abort, raise or stream.
"""

import concurrent.futures
import json
import sys
import threading
import time

import grpc
import pytest
from grpc._cython import cygrpc

from tensorflow_serving.model_servers.inline_grpc_server import SHUTTING_DOWN, InlineGrpcServer
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status

SERVICE = "test.Echo"


def _bytes(data: bytes) -> bytes:
    return data


def _strict(data: bytes) -> bytes:
    if data.startswith(b"bad"):
        raise ValueError("not a message")
    return data


class Echo:
    """The test service; `release` holds `Block` calls until the test lets them go."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.blocked = 0
        self.closed = threading.Event()
        self.pending: list = []
        self._lock = threading.Lock()
        self.lock = threading.Lock()

    def echo(self, request: bytes, context) -> bytes:
        context.send_initial_metadata((("x-initial", "hello"),))
        context.set_trailing_metadata((("x-trailing", request.decode()),))
        return b"echo:" + request

    def block(self, request: bytes, context) -> bytes:
        with self.lock:
            self.blocked += 1
        self.release.wait(30)
        return b"released"

    def abort(self, request: bytes, context) -> bytes:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad value {request.decode()!r}")

    def raises(self, request: bytes, context) -> bytes:
        raise RuntimeError("boom")

    def thread(self, request: bytes, context) -> bytes:
        return str(threading.get_ident()).encode()

    def remaining(self, request: bytes, context) -> bytes:
        return f"{context.time_remaining():.1f}".encode()

    def later(self, request: bytes, context):
        """Returns a Future answered by another thread once all six calls are in, as a batch is."""
        answer: concurrent.futures.Future = concurrent.futures.Future()
        answer.set_running_or_notify_cancel()
        if request == b"fail":
            answer.set_exception(status.unavailable("queue full"))
            return answer
        with self._lock:
            self.pending.append((request, answer))
            if len(self.pending) == 6:
                batch, self.pending = self.pending, []
                threading.Thread(target=_answer_all, args=(batch,)).start()
        return answer

    def count(self, request: bytes, context):
        context.add_callback(self.closed.set)
        for index in range(int(request)):
            yield str(index).encode()

    def forever(self, request: bytes, context):
        context.add_callback(self.closed.set)
        yield b"first"
        while not self.closed.is_set():
            time.sleep(0.01)

    def handler(self) -> grpc.GenericRpcHandler:
        unary = {
            "Echo": self.echo,
            "Block": self.block,
            "Abort": self.abort,
            "Raise": self.raises,
            "Remaining": self.remaining,
            "Thread": self.thread,
            "Later": self.later,
        }
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                behavior, request_deserializer=_strict, response_serializer=_bytes
            )
            for name, behavior in unary.items()
        }
        for name, behavior in (("Count", self.count), ("Forever", self.forever)):
            handlers[name] = grpc.unary_stream_rpc_method_handler(
                behavior, request_deserializer=_bytes, response_serializer=_bytes
            )
        handlers["Upload"] = grpc.stream_unary_rpc_method_handler(lambda it, ctx: b"")
        return grpc.method_handlers_generic_handler(SERVICE, handlers)


def error_of(call, request) -> tuple[grpc.StatusCode, str]:
    """The code and details of a call that must fail."""
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=10)
    return raised.value.code(), raised.value.details()


class Running:
    def __init__(self, echo: Echo, num_threads: int = 4, **settings):
        self.echo = echo
        self.server = InlineGrpcServer(num_threads=num_threads, **settings)
        self.server.add_generic_rpc_handlers((echo.handler(),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def unary(self, method: str):
        return self.channel.unary_unary(f"/{SERVICE}/{method}")

    def stream(self, method: str):
        return self.channel.unary_stream(f"/{SERVICE}/{method}")

    def close(self) -> None:
        self.echo.release.set()
        self.channel.close()
        assert self.server.stop(None).wait(10)


@pytest.fixture
def running():
    server = Running(Echo())
    yield server
    server.close()


def test_unary_call_returns_answer_and_both_metadata(running):
    answer, call = running.unary("Echo").with_call(b"hi", timeout=10)
    assert answer == b"echo:hi"
    assert ("x-initial", "hello") in call.initial_metadata()
    assert ("x-trailing", "hi") in call.trailing_metadata()
    assert call.code() == grpc.StatusCode.OK


def test_abort_sends_the_handlers_code_and_details(running):
    code, details = error_of(running.unary("Abort"), b"7")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "bad value '7'"


def test_handler_exception_is_unknown_and_server_keeps_serving(running):
    code, details = error_of(running.unary("Raise"), b"")
    assert code == grpc.StatusCode.UNKNOWN
    assert "Exception calling application: boom" in details
    assert running.unary("Echo")(b"again", timeout=10) == b"echo:again"


def test_undecodable_request_is_internal(running):
    code, details = error_of(running.unary("Echo"), b"bad bytes")
    assert code == grpc.StatusCode.INTERNAL
    assert details == "Exception deserializing request!"


def test_unknown_method_is_unimplemented(running):
    code, details = error_of(running.unary("Nope"), b"")
    assert code == grpc.StatusCode.UNIMPLEMENTED
    assert details == "Method not found!"


def test_request_streaming_method_is_refused_by_name(running):
    upload = running.channel.stream_unary(f"/{SERVICE}/Upload")
    code, details = error_of(upload, iter([b"a", b"b"]))
    assert code == grpc.StatusCode.UNIMPLEMENTED
    assert "/test.Echo/Upload" in details


def _answer_all(batch) -> None:
    for request, answer in batch:
        answer.set_result(b"later:" + request)


def test_a_future_answer_comes_from_another_thread_and_frees_the_handler(running):
    # Six calls on four threads, answered only once all six are in: none holds its thread.
    futures = [running.unary("Later").future(str(i).encode(), timeout=10) for i in range(6)]
    assert [f.result() for f in futures] == [f"later:{i}".encode() for i in range(6)]
    code, details = error_of(running.unary("Later"), b"fail")
    assert code == grpc.StatusCode.UNAVAILABLE
    assert details == "queue full"


def test_time_remaining_follows_the_client_deadline(running):
    remaining = float(running.unary("Remaining")(b"", timeout=5))
    assert 3.0 < remaining <= 5.0


def test_response_stream_delivers_every_message_then_ok(running):
    answers = list(running.stream("Count")(b"5", timeout=10))
    assert answers == [b"0", b"1", b"2", b"3", b"4"]
    assert running.echo.closed.wait(10)


def test_cancelled_stream_runs_the_handlers_callback(running):
    responses = running.stream("Forever")(b"", timeout=30)
    assert next(responses) == b"first"
    responses.cancel()
    assert running.echo.closed.wait(10)
    assert running.unary("Echo")(b"after", timeout=10) == b"echo:after"


def test_more_blocked_calls_than_threads_all_finish():
    server = Running(Echo())
    try:
        futures = [server.unary("Block").future(b"", timeout=30) for _ in range(12)]
        assert testing.wait_for(lambda: server.echo.blocked >= 4, timeout=10)
        server.echo.release.set()
        assert [future.result() for future in futures] == [b"released"] * 12
    finally:
        server.close()


def test_one_call_at_a_time_is_served_by_the_same_few_threads():
    """As in gRPC C++'s sync server, at most two threads wait in the completion
    queue, so a lone client's calls find a thread whose caches are warm rather
    than going round all of them."""
    server = Running(Echo(), num_threads=16)
    try:
        threads = {server.unary("Thread")(b"", timeout=10) for _ in range(64)}
        assert len(threads) <= 4, len(threads)
    finally:
        server.close()


def test_waiting_threads_all_end_when_the_server_stops():
    server = Running(Echo(), num_threads=8, thread_name_prefix="gated")
    assert server.unary("Echo")(b"x", timeout=10) == b"echo:x"
    server.close()
    assert testing.wait_for(
        lambda: not any(t.name.startswith("gated_") for t in threading.enumerate()), timeout=10
    )


def test_concurrency_limit_answers_resource_exhausted_at_once():
    server = Running(Echo(), maximum_concurrent_rpcs=2)
    try:
        held = [server.unary("Block").future(b"", timeout=30) for _ in range(2)]
        assert testing.wait_for(lambda: server.echo.blocked == 2, timeout=10)
        code, details = error_of(server.unary("Echo"), b"x")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details == "Concurrent RPC limit exceeded!"
        server.echo.release.set()
        assert [future.result() for future in held] == [b"released"] * 2
        assert server.unary("Echo")(b"y", timeout=10) == b"echo:y"
    finally:
        server.close()


def test_a_control_method_is_answered_while_every_thread_is_blocked():
    """A control method has threads of its own, and the concurrency limit does
    not refuse it: it is answered while both threads hold blocked calls."""
    server = Running(
        Echo(), num_threads=2, maximum_concurrent_rpcs=2, control_methods=[f"/{SERVICE}/Echo"]
    )
    try:
        held = [server.unary("Block").future(b"", timeout=30) for _ in range(2)]
        assert testing.wait_for(lambda: server.echo.blocked == 2, timeout=10)
        assert server.unary("Echo")(b"status", timeout=10) == b"echo:status"
        assert not any(future.done() for future in held)
        server.echo.release.set()
        assert [future.result() for future in held] == [b"released"] * 2
    finally:
        server.close()


def test_with_control_methods_calls_beyond_the_threads_wait_their_turn():
    """Two handlers run and the other calls wait while a control call is answered;
    all finish once released."""
    server = Running(Echo(), num_threads=2, control_methods=[f"/{SERVICE}/Echo"])
    try:
        held = [server.unary("Block").future(b"", timeout=30) for _ in range(5)]
        assert testing.wait_for(lambda: server.echo.blocked == 2, timeout=10)
        assert server.unary("Echo")(b"status", timeout=10) == b"echo:status"
        assert server.echo.blocked == 2
        server.echo.release.set()
        assert [future.result() for future in held] == [b"released"] * 5
    finally:
        server.close()


def test_stop_with_grace_finishes_running_calls_and_refuses_new_ones():
    server = Running(Echo())
    try:
        held = server.unary("Block").future(b"", timeout=30)
        assert testing.wait_for(lambda: server.echo.blocked == 1, timeout=10)
        stopped = server.server.stop(20)
        # On the connection the running call uses, so gRPC core would see it.
        assert error_of(server.unary("Echo"), b"late") == (
            grpc.StatusCode.UNAVAILABLE,
            SHUTTING_DOWN,
        )
        assert not stopped.is_set()
        server.echo.release.set()
        assert held.result() == b"released"
        assert stopped.wait(10)
    finally:
        server.close()


def _calls_received() -> int:
    """Calls gRPC received on this process's servers, handled or not (from channelz)."""
    servers = json.loads(cygrpc.channelz_get_servers(0)).get("server", [])
    return sum(int(server["data"].get("callsStarted", 0)) for server in servers)


def test_calls_received_but_not_yet_handled_when_stop_begins_are_refused_unavailable():
    """Issue 36, item 5. With the one thread busy, gRPC hands the first late call
    to the server's request for calls (the server sees it only after stop()) and
    holds the second one unmatched. gRPC core's shutdown cancelled that one
    (CANCELLED); drained first, the server asks for it and refuses both."""
    server = Running(Echo(), num_threads=1)
    try:
        held = server.unary("Block").future(b"", timeout=30)
        assert testing.wait_for(lambda: server.echo.blocked == 1, timeout=10)
        received = _calls_received()
        late = [server.unary("Echo").future(b"late", timeout=30) for _ in range(2)]
        assert testing.wait_for(lambda: _calls_received() == received + 2, timeout=10)
        stopped = server.server.stop(30)
        server.echo.release.set()
        assert held.result() == b"released"
        for call in late:
            with pytest.raises(grpc.RpcError) as raised:
                call.result()
            assert (raised.value.code(), raised.value.details()) == (
                grpc.StatusCode.UNAVAILABLE,
                SHUTTING_DOWN,
            )
        assert stopped.wait(10)
    finally:
        server.close()


def test_drain_refuses_every_later_call_until_stop_and_reports_the_running_ones_done():
    """A process that exits after drain() never shuts gRPC core down: calls on any
    connection, old or new, are refused UNAVAILABLE for as long as it lives."""
    server = Running(Echo())
    try:
        held = server.unary("Block").future(b"", timeout=30)
        assert testing.wait_for(lambda: server.echo.blocked == 1, timeout=10)
        drained = server.server.drain(30)
        for _ in range(3):
            assert error_of(server.unary("Echo"), b"late")[0] == grpc.StatusCode.UNAVAILABLE
        assert not drained.is_set()
        server.echo.release.set()
        assert held.result() == b"released"
        assert drained.wait(10)
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as fresh:
            call = fresh.unary_unary(f"/{SERVICE}/Echo")
            assert error_of(call, b"new connection") == (
                grpc.StatusCode.UNAVAILABLE,
                SHUTTING_DOWN,
            )
        assert not server.server.wait_for_termination(0)
        assert server.server.stop(30).wait(10)
    finally:
        server.close()


def test_stop_without_grace_cancels_running_calls():
    server = Running(Echo())
    try:
        held = server.unary("Block").future(b"", timeout=30)
        assert testing.wait_for(lambda: server.echo.blocked == 1, timeout=10)
        stopped = server.server.stop(None)
        with pytest.raises(grpc.RpcError) as error:
            held.result()
        # gRPC's own words for calls cut off by a shutdown, as with the stock server.
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error.value.details() == "Cancelling all calls"
        server.echo.release.set()
        assert stopped.wait(10)
    finally:
        server.close()


def test_interceptor_can_replace_the_handler():
    class Refuse(grpc.ServerInterceptor):
        def intercept_service(self, continuation, details):
            if details.method.endswith("/Echo"):
                return grpc.unary_unary_rpc_method_handler(
                    lambda request, context: context.abort(grpc.StatusCode.PERMISSION_DENIED, "no"),
                )
            return continuation(details)

    server = Running(Echo(), interceptors=[Refuse()])
    try:
        code, _ = error_of(server.unary("Echo"), b"x")
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert float(server.unary("Remaining")(b"", timeout=5)) > 0
    finally:
        server.close()


class _CoreCall:
    """Stands in for a cygrpc call: start_server_batch blocks while `held` (a write in progress)."""

    def __init__(self, held: bool = False) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        if not held:
            self.release.set()
        self.batches = 0

    def start_server_batch(self, operations, tag) -> None:
        self.entered.set()
        assert self.release.wait(30)
        self.batches += 1


class _CoreServer:
    """Stands in for the cygrpc server and queue: records destroy() and shutdown()."""

    def __init__(self) -> None:
        self.destroyed = threading.Event()

    def destroy(self) -> None:
        self.destroyed.set()

    def shutdown(self) -> None:
        pass


def _in_thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_a_batch_in_progress_does_not_hold_up_batches_of_other_calls():
    server = InlineGrpcServer(num_threads=1)
    writing = _CoreCall(held=True)
    first = _in_thread(server.start_batch, writing, (), None)
    assert writing.entered.wait(10)
    other = _CoreCall()
    second = _in_thread(server.start_batch, other, (), None)
    second.join(10)
    assert other.batches == 1, "a second call's batch waited for the first call's write"
    writing.release.set()
    first.join(10)
    assert writing.batches == 1


def test_the_core_is_destroyed_only_after_batches_in_progress_return():
    server = InlineGrpcServer(num_threads=1)
    core = _CoreServer()
    server._server, server._cq, server._stage = core, core, "stopping"
    writing = _CoreCall(held=True)
    batch = _in_thread(server.start_batch, writing, (), None)
    assert writing.entered.wait(10)
    shutdown = _in_thread(server._on_shutdown, None)
    assert testing.wait_for(lambda: server._stage == "stopped", timeout=10)
    assert not core.destroyed.is_set()
    assert not server.start_batch(_CoreCall(), (), None)  # refused once stopped
    writing.release.set()
    batch.join(10)
    shutdown.join(10)
    assert core.destroyed.is_set()
    assert server.wait_for_termination(10)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
