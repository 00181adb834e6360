"""DataPlane: the one lifecycle of a model request, whichever transport carried it.

MLServer's name for the layer between thin gRPC and REST transports and the
models. For every request that uses a model version (predict, classify,
regress, multi-inference, metadata) it

  1. admits it, or refuses it UNAVAILABLE past `max_in_flight`;
  2. refuses it DEADLINE_EXCEEDED if its deadline has already passed;
  3. runs the work's own checks, then looks up and acquires the version in
     one step (ServerCore.servable_handle), so an unload waits for it;
  4. starts the work on the version under the request's deadline (decode,
     then the Servable's submit on this plane's runner) and, once its future
     is done, finishes it (encode);
  5. maps any failure once to a ServingError (anything else is INTERNAL and
     logged), releases the version, and counts the request in the metrics;
  6. hands a sampled answered request to its model's request logger
     (logging_config; core/request_logger.py), after the answer.

The transport turns bytes into a Call and a Work, and the outcome (a future
of the encoded answer, or of a ServingError) back into bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tensorflow_serving.apis import model_pb2
from tensorflow_serving.batching.arrivals import Arrivals
from tensorflow_serving.core.servable_handle import ServableHandle
from tensorflow_serving.model_servers import metrics as metrics_lib
from tensorflow_serving.util import request_deadline, status
from tensorflow_serving.util.completion import Completion
from tensorflow_serving.util.executors import CALLING_THREAD, Runner
from tensorflow_serving.util.rate_limited_log import RateLimitedLog

_LOG = logging.getLogger(__name__)
# A failure the mapping does not know is a bug; a client may still repeat what
# trips it, so each kind (API and exception type) is logged once a minute.
_UNEXPECTED = RateLimitedLog(_LOG)


@dataclasses.dataclass(slots=True)
class Call:
    """One request as the lifecycle sees it.

    `api` is the metrics' API label (the transport's method name);
    `deadline` is the time.monotonic() after which the client no longer waits.
    """

    api: str
    model_spec: model_pb2.ModelSpec
    deadline: float | None = None
    started: float = dataclasses.field(default_factory=time.perf_counter)
    # Set by a transport that already answered (e.g. REST's 504) and counted
    # the request itself: the lifecycle then does not count it again.
    answered_elsewhere: bool = False


class Work:
    """What a request does with the version it acquired; subclasses override start().

    The lifecycle calls check() before the lookup, start() with the acquired
    handle, and finish() with the result of start()'s future, each once, on
    whichever thread the lifecycle runs at that step. Any of them may raise.
    """

    # The signature that ran, for the metrics; set by start() once known.
    signature_name: str = ""
    # tf.Examples in the request (Classify, Regress, MultiInference), for the metrics.
    example_count: int = 0

    def check(self) -> None:
        """Checks that need no model (they fail before the model is looked up)."""

    def lookup_failed(self, error: Exception) -> Exception:
        """The error a client sees when the model lookup fails with `error`."""
        return error

    def start(self, handle: ServableHandle, runner: Runner) -> Completion:
        """Starts the work on `handle`; the future's result goes to finish()."""
        raise NotImplementedError

    def finish(self, handle: ServableHandle, value: Any) -> Any:
        """The answer, from start()'s result (encoded for the transport)."""
        return value

    def logged(self, value: Any) -> Any:
        """What the request log keeps, from start()'s result: a Predict's (signature name,
        inputs, outputs) or a request_logger.ExamplesRecord; None: this kind of request is
        not logged. Called only for sampled requests."""
        return None


class SyncWork(Work):
    """Work done by one function of the handle, run on the plane's runner."""

    def __init__(
        self, run: Callable[[ServableHandle], Any], check: Callable[[], None] | None = None
    ):
        self._run = run
        self._check = check

    def check(self) -> None:
        if self._check is not None:
            self._check()

    def start(self, handle: ServableHandle, runner: Runner) -> Completion:
        return runner.submit(self._run, handle)


def serving_error(api: str, error: BaseException) -> status.ServingError:
    """The error as a client sees it: a ServingError as is, anything else INTERNAL
    (logged with its traceback, at most once a minute per API and exception type)."""
    if isinstance(error, status.ServingError):
        return error
    kind = f"{api}: {type(error).__name__}"
    _UNEXPECTED.log(kind, logging.ERROR, "%s failed unexpectedly", api, exc_info=error)
    return status.internal(f"{api} failed: {type(error).__name__}: {error}")


class DataPlane:
    """Runs Calls against a ServerCore for one transport. Thread-safe.

    `runner` is where servables run work that is not batched (and lent batch
    threads): CALLING_THREAD for a transport whose threads may block.
    `max_in_flight` bounds the requests this plane holds at once (0: no bound).
    `arrivals`, when the transport counts its requests in (see Arrivals), learns
    on the request's thread that a request is decoded and about to start.
    """

    def __init__(
        self,
        core,
        protocol: str,
        runner: Runner = CALLING_THREAD,
        max_in_flight: int = 0,
        metrics: metrics_lib.ServingMetrics | None = None,
        arrivals: Arrivals | None = None,
    ):
        self._core = core
        self._arrivals = arrivals
        self._protocol = protocol
        self._runner = runner
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._lock = threading.Lock()
        self._metrics = metrics or metrics_lib.default()
        # Per-model request loggers (logging_config), when the core has them.
        self._request_logs = getattr(core, "request_logger", None)

    @property
    def core(self):
        return self._core

    def in_flight(self) -> int:
        """Requests admitted and not yet answered (counted only with a max_in_flight)."""
        return self._in_flight

    def serve(
        self,
        call: Call,
        work: Work,
        done: Callable[[Completion], None] | None = None,
        runner: Runner | None = None,
    ) -> Completion:
        """Runs `work` for `call`; returns a future of its answer or of a ServingError.

        Never raises. `done(future)`, when given, is called once with the
        outcome before the request is counted in the metrics, on the thread
        that finished it (the caller's own, when everything ran during this
        call). `runner` replaces the plane's runner for this call (e.g.
        CALLING_THREAD for a call made on a worker thread).
        """
        outcome = Completion()
        outcome.set_running_or_notify_cancel()
        if done is not None:
            outcome.add_done_callback(done)
        try:
            self._admit(call)
        except status.ServingError as refusal:
            self._settle(call, None, outcome, error=refusal)
            return outcome
        handle = None
        try:
            work.check()
            try:
                handle = self._core.servable_handle(call.model_spec)
            except Exception as error:
                raise work.lookup_failed(error) from None
            if self._arrivals is not None:
                self._arrivals.handed_over()
            with request_deadline.at(call.deadline):
                pending = work.start(handle, runner or self._runner)
        except Exception as error:
            self._release(handle)
            self._settle(call, handle, outcome, work, error=error)
            return outcome
        run_started = time.perf_counter()
        pending.add_done_callback(
            lambda ran: self._finish(call, work, handle, ran, outcome, run_started)
        )
        return outcome

    def _admit(self, call: Call) -> None:
        if call.deadline is not None and time.monotonic() >= call.deadline:
            raise status.deadline_exceeded(f"{call.api}: deadline exceeded before it started")
        if not self._max_in_flight:
            return
        with self._lock:
            if self._in_flight >= self._max_in_flight:
                raise status.unavailable(
                    f"Server is overloaded: {self._in_flight} {self._protocol} requests are "
                    "already queued or running; retry later"
                )
            self._in_flight += 1

    def _release(self, handle: ServableHandle | None) -> None:
        if handle is not None:
            handle.release()
        if self._max_in_flight:
            with self._lock:
                self._in_flight -= 1

    def _finish(
        self,
        call: Call,
        work: Work,
        handle: ServableHandle,
        ran: Completion,
        outcome: Completion,
        run_started: float,
    ) -> None:
        """start()'s future is done: encode, release the version, answer, count."""
        answer, error, value = None, None, None
        try:
            value = ran.result()
            ran_for = time.perf_counter() - run_started
            answer = work.finish(handle, value)
        except BaseException as raised:
            error = raised
        self._release(handle)
        self._settle(call, handle, outcome, work, answer=answer, error=error)
        if error is not None:
            return
        self._metrics.record_runtime(handle.name, call.api, ran_for)
        if work.example_count:
            self._metrics.record_examples(handle.name, work.example_count)
        if self._request_logs is not None:
            self._log(handle, work, value)

    def _log(self, handle: ServableHandle, work: Work, value: Any) -> None:
        """Hands a sampled request of a model with a logging_config to its logger."""
        logger = self._request_logs.logger(handle.name)
        if logger is None or not logger.sampled():
            return
        record = work.logged(value)
        if record is not None:
            logger.log(handle.name, handle.version, record)

    def _settle(
        self,
        call: Call,
        handle: ServableHandle | None,
        outcome: Completion,
        work: Work | None = None,
        answer: Any = None,
        error: BaseException | None = None,
    ) -> None:
        """Answers the caller first, then counts the request (unless answered elsewhere)."""
        if error is None:
            outcome.set_result(answer)
            status_name = metrics_lib.OK
        else:
            failure = serving_error(call.api, error)
            outcome.set_exception(failure)
            status_name = failure.code.name
        if call.answered_elsewhere:
            return
        self._metrics.record_request(
            call.model_spec.name,
            call.api,
            self._protocol,
            status_name,
            time.perf_counter() - call.started,
            "" if handle is None else str(handle.version),
            "" if work is None else work.signature_name,
        )
