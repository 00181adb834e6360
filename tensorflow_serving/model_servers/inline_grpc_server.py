"""A gRPC server whose completion-queue threads run the handlers themselves.

What it promises:
- The part of grpcio's `grpc.Server` API that servers use: generic and
  registered handlers, interceptors, insecure and TLS ports,
  `maximum_concurrent_rpcs`, `start`, `stop(grace)`, `wait_for_termination`.
  The generated `add_*Servicer_to_server` functions work unchanged, and
  handlers get a `grpc.ServicerContext` (response compression excepted).
- A unary-unary handler runs on the thread that received its request
  message. A unary-stream handler (Health.Watch) runs on a thread of its
  own. A request-streaming method is answered UNIMPLEMENTED.
- A unary handler may return a Completion (util/completion.py) or a
  `concurrent.futures.Future` of its response: the answer is sent when it is done, from the thread that completes
  it (a `status.ServingError` sets the call's code and details).
- With `maximum_concurrent_rpcs`, a call beyond that many in flight gets
  RESOURCE_EXHAUSTED at once.
- `drain(grace)` refuses every call gRPC hands over from then on with
  UNAVAILABLE, lets the calls already handled finish (cancelling those still
  running after `grace` seconds), and goes on accepting and refusing until
  the process ends or stop() is called. `stop(grace)` drains, then shuts gRPC
  core down; the event it returns is set once every call ended.
- Methods named in `control_methods` (status, metadata, reload, health) are
  answered while `num_threads` handlers of other methods run (a model each,
  say), and the concurrency limit does not refuse them.

Threads: the server owns `num_threads` threads, and CONTROL_THREADS more with
`control_methods`. At most two of them wait in the completion queue at a
time, as in gRPC C++'s sync server; the others park until a waiting one goes
to work. A handler that blocks holds one of the threads, so a server whose
handlers wait (for a batch, say) needs more threads than it has cores.

With `control_methods`, at most `num_threads` handlers of other methods run
at once: a request whose message comes in while they all run waits its turn
(in arrival order), taken by the next thread that finishes a handler. So
the spare threads go on polling, and run a control method's handler as soon
as its request is in.

Why: grpcio's stock server hands every call from its polling thread to a pool
thread and back. Running the handler where the request arrived removes those
hand-offs, which cost a small call more than the rest of its Python
(docs/performance/2026-11-27-grpc-transport.md).

Why drain before gRPC core's shutdown: once the core's shutdown has begun, it
cancels (CANCELLED, not UNAVAILABLE) every call it has received but not yet
handed to a request for calls, and every call that reaches it later on a
connection whose client has not yet seen the GOAWAY; no code of ours sees
them. While draining, the server keeps asking for calls, so the core hands
every call over and it is refused UNAVAILABLE here. A process that exits
after the drain (the model server on SIGTERM) never shuts the core down, and
the exit closes the connections, which clients see as UNAVAILABLE too.

Private API: this is the one module of the server that uses grpcio's private
Cython layer, `grpc._cython.cygrpc` (and `grpc.ServerCredentials._credentials`),
which grpcio does not promise to keep from one release to the next.
requirements.txt pins grpcio for it, PRIVATE_CYGRPC_API below lists the
members it calls on cygrpc's objects, and model_servers/private_apis_test.py
fails, naming the pinned version, when the installed grpcio differs from the
pin or any of those names is gone. `--grpc_server=grpcio` serves with
grpcio's stock server instead.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from tensorflow_serving.model_servers import grpc_core_settings

# Before grpc's first import in a server process: gRPC reads them only then.
grpc_core_settings.choose_server_experiments()

import grpc  # noqa: E402
from grpc._cython import cygrpc  # noqa: E402

from tensorflow_serving.batching.arrivals import Arrivals  # noqa: E402
from tensorflow_serving.util import status  # noqa: E402
from tensorflow_serving.util.completion import Completion  # noqa: E402

_LOG = logging.getLogger(__name__)

# What a unary handler may return instead of its response (see the module docstring).
_PENDING_TYPES = (Completion, concurrent.futures.Future)

_NO_FLAGS = 0
# gRPC C++'s sync server defaults (ServerBuilder::SyncServerOption): at least
# one and at most two threads wait in the completion queue; the rest wait for
# their turn.
_MIN_POLLERS = 1
_MAX_POLLERS = 2
_OK = grpc.StatusCode.OK
# The stages in which the completion queue takes new operations.
_STAGES_WITH_QUEUE = ("new", "started", "draining", "stopping")
# Threads beyond num_threads with control methods: two, so that a reload waiting
# for its models still leaves one to answer the others.
CONTROL_THREADS = 2
# The details of a call refused while the server drains.
SHUTTING_DOWN = "The server is shutting down: the call was not run; retry it on another server"

# The members of grpcio's private cygrpc classes this module uses on their
# instances (names used as `cygrpc.Name` or `cygrpc.Name.member` are found in
# the source by private_apis_test, which checks both against the pinned grpcio).
PRIVATE_CYGRPC_API: dict[str, tuple[str, ...]] = {
    "Server": (
        "register_completion_queue",
        "add_http2_port",
        "start",
        "request_call",
        "shutdown",
        "cancel_all_calls",
        "destroy",
    ),
    "CompletionQueue": ("poll", "shutdown"),
    "Call": ("start_server_batch", "cancel", "peer"),
    "RequestCallEvent": (
        "call",
        "call_details",
        "invocation_metadata",
        "success",
        "completion_type",
        "tag",
    ),
    "BatchOperationEvent": ("batch_operations", "success", "completion_type", "tag"),
    "CallDetails": ("method", "deadline"),
    "ReceiveMessageOperation": ("message",),
    "ReceiveCloseOnServerOperation": ("cancelled",),
}


class _AbortedRpc(Exception):
    """Raised by context.abort(): the handler stops, its status is already set."""


class _HandlerCallDetails(grpc.HandlerCallDetails):
    __slots__ = ("method", "invocation_metadata")

    def __init__(self, method: str, invocation_metadata):
        self.method = method
        self.invocation_metadata = invocation_metadata


class _Rpc(grpc.ServicerContext):
    """One call: its state, and the ServicerContext its handler sees."""

    def __init__(self, server: InlineGrpcServer, event):
        self._server = server
        self._event = event
        self.call = event.call
        self.method = event.call_details.method.decode("utf-8", "replace")
        self.code_: grpc.StatusCode = _OK
        self.details_: str | None = None
        self._initial_metadata = None
        self._initial_metadata_sent = False
        self._trailing_metadata = None
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self.finished = False
        self.cancelled = False
        self.close_requested = False
        # Handed to a handler (not refused): counted until it ends, for drain().
        self.admitted = False
        self.handler: grpc.RpcMethodHandler | None = None

    # --- replies (started from whichever thread finished the work) ---

    def _initial_metadata_ops(self) -> tuple:
        if self._initial_metadata_sent:
            return ()
        self._initial_metadata_sent = True
        return (cygrpc.SendInitialMetadataOperation(self._initial_metadata, _NO_FLAGS),)

    def reply(self, body: bytes | None) -> None:
        """Sends the answer (if any) and the status in one batch: the RPC's last event."""
        code = self.code_
        details = (self.details_ or "").encode("utf-8", "replace")
        operations = [
            *self._initial_metadata_ops(),
            cygrpc.SendStatusFromServerOperation(
                self._trailing_metadata, code.value[0], details, _NO_FLAGS
            ),
        ]
        if body is not None:
            operations.append(cygrpc.SendMessageOperation(body, _NO_FLAGS))
        tag = self._server._ignore
        if not self.close_requested:
            self.close_requested = True
            operations.append(cygrpc.ReceiveCloseOnServerOperation(_NO_FLAGS))
            tag = self.on_closed
        self._server.start_batch(self.call, operations, tag)

    def fail(self, code: grpc.StatusCode, details: str) -> None:
        """Ends the RPC with an error status (unless the handler already chose one)."""
        if self.code_ is _OK:
            self.code_ = code
        if self.details_ is None:
            self.details_ = details
        self.reply(None)

    def send_streamed(self, body: bytes) -> bool:
        """One message of a response stream; waits for it to leave. False: the call ended."""
        sent = _SendCompletion()
        operations = (
            *self._initial_metadata_ops(),
            cygrpc.SendMessageOperation(body, _NO_FLAGS),
        )
        if not self._server.start_batch(self.call, operations, sent.on_event):
            return False
        return sent.wait() and not self.cancelled

    def watch_close(self) -> None:
        """Learns of a cancelled stream while its handler still runs."""
        self.close_requested = True
        self._server.start_batch(
            self.call, (cygrpc.ReceiveCloseOnServerOperation(_NO_FLAGS),), self.on_closed
        )

    def on_closed(self, event) -> None:
        """The call is over (answered, cancelled or timed out): run the callbacks."""
        operation = event.batch_operations[-1]
        if not event.success or operation.cancelled():
            self.cancelled = True
        with self._lock:
            self.finished = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                _LOG.exception("gRPC call-end callback failed")
        self._server._rpc_ended(self)

    # --- grpc.ServicerContext ---

    def is_active(self) -> bool:
        return not self.finished and not self.cancelled

    def time_remaining(self) -> float:
        return max(self._event.call_details.deadline - time.time(), 0)

    def cancel(self) -> None:
        self.call.cancel(cygrpc.StatusCode.cancelled, b"Cancelled by the server")

    def add_callback(self, callback: Callable[[], None]) -> bool:
        with self._lock:
            if self.finished:
                return False
            self._callbacks.append(callback)
            return True

    def invocation_metadata(self):
        return self._event.invocation_metadata

    def peer(self) -> str:
        return self.call.peer().decode("utf-8", "replace")

    def peer_identities(self) -> Sequence[bytes] | None:
        return cygrpc.peer_identities(self.call)

    def peer_identity_key(self) -> str | None:
        key = cygrpc.peer_identity_key(self.call)
        return None if key is None else key.decode("utf-8", "replace")

    def auth_context(self) -> dict[str, Sequence[bytes]]:
        return {
            (key.decode() if isinstance(key, bytes) else key): value
            for key, value in cygrpc.auth_context(self.call).items()
        }

    def send_initial_metadata(self, initial_metadata) -> None:
        if self._initial_metadata_sent or self._initial_metadata is not None:
            raise ValueError("Initial metadata no longer allowed!")
        self._initial_metadata = tuple(initial_metadata)

    def set_trailing_metadata(self, trailing_metadata) -> None:
        self._trailing_metadata = tuple(trailing_metadata)

    def trailing_metadata(self):
        return self._trailing_metadata

    def abort(self, code: grpc.StatusCode, details: str):
        if code is _OK:
            _LOG.error("abort() called with StatusCode.OK; returning UNKNOWN")
            code = grpc.StatusCode.UNKNOWN
        self.code_ = code
        self.details_ = details
        raise _AbortedRpc(details)

    def abort_with_status(self, status: grpc.Status):
        self.set_trailing_metadata(status.trailing_metadata or ())
        self.abort(status.code, status.details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code_ = code

    def code(self) -> grpc.StatusCode:
        return self.code_

    def set_details(self, details: str) -> None:
        self.details_ = details

    def details(self) -> str | None:
        return self.details_

    def set_compression(self, compression) -> None:
        raise NotImplementedError("--grpc_server=inline does not compress responses")

    def disable_next_message_compression(self) -> None:
        raise NotImplementedError("--grpc_server=inline does not compress responses")


class _SendCompletion:
    """Lets a streaming handler's thread wait for its message to be sent."""

    __slots__ = ("_done", "_success")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._success = False

    def on_event(self, event) -> None:
        self._success = event.success
        self._done.set()

    def wait(self) -> bool:
        self._done.wait()
        return self._success


class InlineGrpcServer:
    """grpc.Server's serving API, with handlers run on the completion-queue threads.

    Set up (handlers, ports) from one thread before start(); start() once;
    stop() from any thread, any number of times.
    """

    def __init__(
        self,
        num_threads: int,
        options: Sequence[tuple[str, int | str]] = (),
        interceptors: Sequence[grpc.ServerInterceptor] = (),
        maximum_concurrent_rpcs: int | None = None,
        thread_name_prefix: str = "grpc",
        arrivals: Arrivals | None = None,
        control_methods: Iterable[str] = (),
    ):
        """`control_methods`: full method names ("/package.Service/Method") whose calls
        never wait behind the other calls (see the module's docstring)."""
        self._num_threads = max(1, num_threads)
        # Counts each unary call from its arrival to its handler's return.
        self._arrivals = arrivals
        self._thread_name_prefix = thread_name_prefix
        self._interceptors = tuple(interceptors)
        self._max_rpcs = maximum_concurrent_rpcs
        self._generic_handlers: list[grpc.GenericRpcHandler] = []
        self._registered: dict[str, grpc.RpcMethodHandler] = {}
        self._cq = cygrpc.CompletionQueue()
        self._server = cygrpc.Server(tuple(options), False)
        self._server.register_completion_queue(self._cq)
        self._control_methods = frozenset(control_methods)
        # With control methods: handlers of other methods running, and the requests
        # waiting for one of them to end.
        self._handling = 0
        self._waiting: collections.deque = collections.deque()
        self._handling_lock = threading.Lock()
        # Guards the stage and the counts below; never held across a call into gRPC
        # core that releases the interpreter lock (see _enter_core).
        self._lock = threading.Lock()
        # Threads inside gRPC core on a call or the server; _on_shutdown waits for none.
        self._in_core = 0
        self._core_left = threading.Condition(self._lock)
        self._active_rpcs = 0
        # Calls handed to a handler (not refused) that have not ended yet.
        self._admitted: set[_Rpc] = set()
        self._stage = "new"  # new -> started -> draining -> stopping -> stopped
        self._drained = threading.Event()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        # Threads in the completion queue (at most _MAX_POLLERS), and the others,
        # each parked on its own held lock, most recently parked last (see _poll).
        self._pollers = 0
        self._parked: list[threading.Lock] = []
        self._pollers_lock = threading.Lock()
        self._queue_shut_down = False

    # --- set-up, as grpc.Server ---

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._generic_handlers.extend(handlers)

    def add_registered_method_handlers(self, service: str, method_handlers: dict) -> None:
        for name, handler in method_handlers.items():
            self._registered[f"/{service}/{name}"] = handler

    def add_insecure_port(self, address: str) -> int:
        return self._server.add_http2_port(address.encode())

    def add_secure_port(self, address: str, credentials: grpc.ServerCredentials) -> int:
        return self._server.add_http2_port(address.encode(), credentials._credentials)

    def start(self) -> None:
        with self._lock:
            if self._stage != "new":
                raise ValueError("Cannot start already-started server!")
            self._server.start()
            self._stage = "started"
            self._server.request_call(self._cq, self._cq, self._on_new_call)
        threads = self._num_threads + (CONTROL_THREADS if self._control_methods else 0)
        for index in range(threads):
            thread = threading.Thread(
                target=self._poll, name=f"{self._thread_name_prefix}_{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def drain(self, grace: float | None) -> threading.Event:
        """Refuses every call handed over from now on (UNAVAILABLE) while the calls
        already handled finish; cancels those still running after `grace` seconds
        (None or <= 0: at once).

        The event it returns is set once the handled calls have all ended, or
        were cancelled. The server goes on accepting connections and refusing
        calls until stop(): a process that exits next need not call it (see
        the module's docstring). Any thread, any number of times.
        """
        with self._lock:
            if self._stage == "new":
                self._stage = "stopped"
                self._drained.set()
                self._stopped.set()
            if self._stage != "started":
                return self._drained
            self._stage = "draining"
            if not self._admitted:
                self._drained.set()
        if grace is None or grace <= 0:
            self._cancel_admitted()
        elif not self._drained.is_set():
            threading.Thread(target=self._cancel_after, args=(grace,), daemon=True).start()
        return self._drained

    def stop(self, grace: float | None) -> threading.Event:
        """Drains (see drain()), then shuts gRPC core down; the event it returns is set
        once the core has ended every call and connection."""
        drained = self.drain(grace)
        if drained.is_set():
            self._shut_down_core()
        elif not self._stopped.is_set():
            threading.Thread(target=self._shut_down_once_drained, daemon=True).start()
        return self._stopped

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)

    def _shut_down_once_drained(self) -> None:
        self._drained.wait()
        self._shut_down_core()

    def _shut_down_core(self) -> None:
        with self._lock:
            if self._stage == "draining":
                self._stage = "stopping"
                self._server.shutdown(self._cq, self._on_shutdown)

    def _cancel_after(self, grace: float) -> None:
        if not self._drained.wait(grace):
            self._cancel_admitted()

    def _cancel_admitted(self) -> None:
        """Cuts off every call still running (UNAVAILABLE, in gRPC's words for a
        shutdown's cancellation); the drain ends."""
        # Under the lock, and only before the shutdown event: it destroys the
        # C server, and touching a call afterwards would crash the process.
        with self._lock:
            if self._stage in ("draining", "stopping"):
                for rpc in self._admitted:
                    rpc.call.cancel(cygrpc.StatusCode.unavailable, b"Cancelling all calls")
        self._drained.set()

    def _on_shutdown(self, event) -> None:
        """Every call has ended: let the pollers go, and the waiters of stop()."""
        with self._lock:
            self._stage = "stopped"
            while self._in_core:
                self._core_left.wait()
            self._server.destroy()
            self._cq.shutdown()
        self._stopped.set()

    def _enter_core(self, stages: tuple[str, ...]) -> bool:
        """Counts the calling thread in gRPC core if the server is in one of `stages`.

        On True the caller must call _leave_core() once its core call returned.
        Why a count and not the lock held across the core call: cygrpc releases
        the interpreter lock there (to write a reply, say), and every poller
        that then wanted the lock would queue behind that write.
        """
        with self._lock:
            if self._stage not in stages:
                return False
            self._in_core += 1
            return True

    def _leave_core(self) -> None:
        with self._lock:
            self._in_core -= 1
            if not self._in_core and self._stage == "stopped":
                self._core_left.notify_all()

    def start_batch(self, call, operations: Sequence, tag: Callable) -> bool:
        """Starts operations on a call, unless the queue is shut down (False). Any thread.

        A handler can outlive its call (a cancelled stream, a stop without
        grace), and gRPC aborts the process on a batch for a shut-down queue.
        """
        if not self._enter_core(_STAGES_WITH_QUEUE):
            return False
        try:
            call.start_server_batch(operations, tag)
        finally:
            self._leave_core()
        return True

    # --- the pollers ---

    def _poll(self) -> None:
        """Runs on each server thread until the queue shuts down: takes one event, runs its tag.

        At least _MIN_POLLERS and at most _MAX_POLLERS threads wait in the
        queue at once; the others park (see _wait_for_polling_turn). The
        thread parked last is unparked first, so the calls of a lone client
        keep landing on the same few threads, whose caches are warm.
        """
        shutdown = cygrpc.CompletionType.queue_shutdown
        timeout = cygrpc.CompletionType.queue_timeout
        parking = threading.Lock()
        parking.acquire()
        while self._wait_for_polling_turn(parking):
            event = self._cq.poll()
            kind = event.completion_type
            self._leave_queue(kind == shutdown)
            if kind == shutdown:
                return
            if kind == timeout:
                continue
            try:
                event.tag(event)
            except Exception:
                _LOG.exception("gRPC event handling failed")
            event = None

    def _wait_for_polling_turn(self, parking: threading.Lock) -> bool:
        """Counts this thread in as a poller, after parking if there are enough; False: stop."""
        with self._pollers_lock:
            if self._queue_shut_down:
                return False
            if self._pollers < _MAX_POLLERS:
                self._pollers += 1
                return True
            self._parked.append(parking)
        parking.acquire()  # released by _leave_queue, which counted this thread in
        return not self._queue_shut_down

    def _leave_queue(self, shut_down: bool) -> None:
        """This thread goes to work: if too few threads are left polling, unpark one."""
        with self._pollers_lock:
            self._pollers -= 1
            if shut_down:
                self._queue_shut_down = True
                parked, self._parked = self._parked, []
                for parking in parked:
                    parking.release()
            elif self._pollers < _MIN_POLLERS and self._parked:
                self._pollers += 1
                self._parked.pop().release()

    def _ignore(self, event) -> None:
        pass

    def _rpc_ended(self, rpc: _Rpc) -> None:
        with self._lock:
            self._active_rpcs -= 1
            if rpc.admitted:
                self._admitted.discard(rpc)
                if not self._admitted and self._stage != "started":
                    self._drained.set()

    def _on_new_call(self, event) -> None:
        """A call gRPC matched to our request: serve it, and ask for the next one.

        Once draining, every call seen is refused UNAVAILABLE, also one gRPC
        received before drain() began: nothing of it has run, and a client may
        retry it elsewhere. The next call is asked for until the core's
        shutdown, so that gRPC core never holds a call it would cancel.
        A control method's call is not refused by the concurrency limit, its
        handler runs as soon as its request is in, and it is not counted
        among the arrivals (it never joins a batch).
        """
        if not event.success:
            return  # the request was failed by the shutdown: no call
        rpc = _Rpc(self, event)
        control = rpc.method in self._control_methods
        self._request_next_call()
        with self._lock:
            self._active_rpcs += 1
            refused = self._stage != "started"
            over_limit = (
                not control and self._max_rpcs is not None and self._active_rpcs > self._max_rpcs
            )
            rpc.admitted = not (refused or over_limit)
            if rpc.admitted:
                self._admitted.add(rpc)
        if refused:
            rpc.fail(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
        elif over_limit:
            rpc.fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!")
        elif control:
            self._serve_call(rpc, self._handle_request, None)
        else:
            self._serve_call(rpc, self._on_request, self._arrivals)

    def _request_next_call(self) -> None:
        """Asks gRPC for the next call while the server serves or drains.

        A request that races the core's shutdown is failed by gRPC, and
        _on_new_call ignores it.
        """
        if not self._enter_core(("started", "draining")):
            return
        try:
            self._server.request_call(self._cq, self._cq, self._on_new_call)
        finally:
            self._leave_core()

    def _serve_call(self, rpc: _Rpc, on_request: Callable, arrivals: Arrivals | None) -> None:
        """Finds the call's handler, then asks for its request message; `on_request` takes
        the message (counted in `arrivals` until the handler returns)."""
        try:
            handler = self._find_handler(rpc)
        except Exception as error:
            _LOG.exception("Finding the handler of %s failed", rpc.method)
            rpc.fail(grpc.StatusCode.UNKNOWN, f"Exception servicing handler: {error}")
            return
        if handler is None:
            rpc.fail(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        elif handler.request_streaming:
            rpc.fail(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{rpc.method}: request streaming is not served by --grpc_server=inline",
            )
        else:
            if arrivals is not None:
                arrivals.begin()
            started = self.start_batch(
                rpc.call,
                (cygrpc.ReceiveMessageOperation(_NO_FLAGS),),
                lambda message_event: on_request(rpc, handler, message_event),
            )
            if not started and arrivals is not None:
                arrivals.abandon()

    def _find_handler(self, rpc: _Rpc) -> grpc.RpcMethodHandler | None:
        details = _HandlerCallDetails(rpc.method, rpc.invocation_metadata())
        return self._intercepted(0, details)

    def _intercepted(self, index: int, details) -> grpc.RpcMethodHandler | None:
        if index == len(self._interceptors):
            return self._lookup(details)
        return self._interceptors[index].intercept_service(
            lambda inner: self._intercepted(index + 1, inner), details
        )

    def _lookup(self, details) -> grpc.RpcMethodHandler | None:
        handler = self._registered.get(details.method)
        if handler is not None:
            return handler
        for generic in self._generic_handlers:
            handler = generic.service(details)
            if handler is not None:
                return handler
        return None

    def _on_request(self, rpc: _Rpc, handler: grpc.RpcMethodHandler, event) -> None:
        """A request's message is in: handle it on this thread, or, with control methods
        and `num_threads` handlers running, leave it to the next thread done with one."""
        if not self._control_methods:
            self._counted_request(rpc, handler, event)
            return
        with self._handling_lock:
            if self._handling >= self._num_threads:
                self._waiting.append((rpc, handler, event))
                return
            self._handling += 1
        work = (rpc, handler, event)
        while work is not None:
            self._counted_request(*work)
            with self._handling_lock:
                work = self._waiting.popleft() if self._waiting else None
                if work is None:
                    self._handling -= 1

    def _counted_request(self, rpc: _Rpc, handler: grpc.RpcMethodHandler, event) -> None:
        """Handles a request, counted in the arrivals until its handler returns."""
        arrivals = self._arrivals
        if arrivals is None:
            self._handle_request(rpc, handler, event)
            return
        arrivals.handing()
        try:
            self._handle_request(rpc, handler, event)
        finally:
            arrivals.end()

    def _handle_request(self, rpc: _Rpc, handler: grpc.RpcMethodHandler, event) -> None:
        data = event.batch_operations[0].message()
        if data is None:
            rpc.fail(
                grpc.StatusCode.UNIMPLEMENTED,
                f'"{rpc.method}" requires exactly one request message.',
            )
            return
        try:
            request = handler.request_deserializer(data) if handler.request_deserializer else data
        except Exception:
            _LOG.exception("Exception deserializing request!")
            rpc.fail(grpc.StatusCode.INTERNAL, "Exception deserializing request!")
            return
        if handler.response_streaming:
            threading.Thread(
                target=self._serve_stream,
                args=(rpc, handler, request),
                name=f"{self._thread_name_prefix}_stream",
                daemon=True,
            ).start()
            return
        self._serve_unary(rpc, handler, request)

    def _serve_unary(self, rpc: _Rpc, handler: grpc.RpcMethodHandler, request) -> None:
        """Runs a unary handler; a Future it returns is answered when done, from that thread."""
        rpc.handler = handler
        try:
            response = handler.unary_unary(request, rpc)
        except _AbortedRpc:
            rpc.reply(None)
            return
        except Exception as error:
            _LOG.exception("Exception calling application: %s", error)
            rpc.fail(grpc.StatusCode.UNKNOWN, f"Exception calling application: {error}")
            return
        if isinstance(response, _PENDING_TYPES):
            response.add_done_callback(lambda done: self._reply_when_done(rpc, handler, done))
            return
        self._reply_with(rpc, handler, response)

    def _reply_when_done(self, rpc: _Rpc, handler: grpc.RpcMethodHandler, done: Completion) -> None:
        """Answers with a handler's finished Future: a ServingError sets the status."""
        try:
            response = done.result()
        except status.ServingError as error:
            rpc.fail(error.code, error.message)
            return
        except Exception as error:
            _LOG.error("Exception calling application: %s", error, exc_info=error)
            rpc.fail(grpc.StatusCode.UNKNOWN, f"Exception calling application: {error}")
            return
        self._reply_with(rpc, handler, response)

    def _reply_with(self, rpc: _Rpc, handler: grpc.RpcMethodHandler, response) -> None:
        try:
            serializer = handler.response_serializer
            body = serializer(response) if serializer else response
        except Exception:
            _LOG.exception("Failed to serialize response!")
            rpc.fail(grpc.StatusCode.INTERNAL, "Failed to serialize response!")
            return
        rpc.reply(body)

    def _serve_stream(self, rpc: _Rpc, handler: grpc.RpcMethodHandler, request) -> None:
        rpc.watch_close()
        serializer = handler.response_serializer
        try:
            for response in handler.unary_stream(request, rpc) or ():
                body = serializer(response) if serializer else response
                if not rpc.send_streamed(body):
                    return
        except _AbortedRpc:
            pass
        except Exception as error:
            _LOG.exception("Exception iterating responses: %s", error)
            rpc.fail(grpc.StatusCode.UNKNOWN, f"Exception iterating responses: {error}")
            return
        rpc.reply(None)


GRPC_SERVERS = ("inline", "grpcio")


def check_grpc_server(name: str) -> None:
    """Refuses an unknown --grpc_server name, listing the known ones."""
    if name not in GRPC_SERVERS:
        raise status.invalid_argument(
            f"--grpc_server must be one of {', '.join(GRPC_SERVERS)}, got {name!r}"
        )


def new_grpc_server(
    kind: str,
    num_threads: int,
    arrivals: Arrivals | None = None,
    control_methods: Iterable[str] = (),
    **settings,
) -> InlineGrpcServer | grpc.Server:
    """The gRPC server `kind` names: InlineGrpcServer, or grpcio's stock thread-pool server.

    The model server and the benchmark's transport floor both build theirs
    here, so the floor always measures the transport the server uses.
    `arrivals` counts the inline server's requests in (grpcio's ignores it).
    `control_methods` never wait behind other calls on the inline server; grpcio's
    server runs them in its one pool, like every other call.
    """
    check_grpc_server(kind)
    if kind == "inline":
        return InlineGrpcServer(
            num_threads,
            thread_name_prefix="grpc",
            arrivals=arrivals,
            control_methods=control_methods,
            **settings,
        )
    return grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=num_threads, thread_name_prefix="grpc"),
        **settings,
    )
