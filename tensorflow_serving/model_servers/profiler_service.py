"""TensorFlow's ProfilerService on the model server's gRPC port (--enable_profiler).

What it promises, as TensorFlow's own service (tsl's profiler_service_impl)
does, so that `profiler_client.trace("host:<grpc port>", logdir, ms)` and
TensorBoard's "capture profile" work against this server:
- Profile records a TensorFlow profiler session of this process for the
  request's `opts.duration_ms` (or until a Terminate names its session_id),
  then writes the collected XSpace to
  `<repository_root>/<session_id>/<host_name>.xplane.pb` (':' in the host
  name becomes '_') on any file system TensorFlow knows; `empty_trace` says
  whether nothing was recorded. One session at a time per process: a second
  concurrent Profile gets INTERNAL, as TensorFlow's answers.
- Terminate ends the running Profile of that session_id early.
- Monitor answers UNIMPLEMENTED "unimplemented.", as TensorFlow's does.

Why in process rather than TensorFlow's profiler server behind a forwarder:
`tf.profiler.experimental.server.start(port)` listens on every interface
([::]:port) and cannot be bound to loopback; recording with TensorFlow's
in-process ProfilerSession and answering on our own port opens no listener.

Threads: a Profile holds no gRPC handler thread while it records; it returns
a Future that a thread of its own completes.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
import threading

import grpc
import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool
from tensorflow.python.profiler.internal import _pywrap_profiler
from tensorflow.tsl.profiler.protobuf import profiler_options_pb2, xplane_pb2

from tensorflow_serving.util import file_io, status
from tensorflow_serving.util.completion import Completion
from tensorflow_serving.util.declared_protos import declare_messages

_LOG = logging.getLogger(__name__)

SERVICE = "tensorflow.ProfilerService"
_F = descriptor_pb2.FieldDescriptorProto

# TensorFlow's profiler_service.proto, the parts the service reads and writes:
# message name -> [(field, number, type, label, type name)].
_MESSAGES = {
    "ProfileRequest": [
        ("duration_ms", 1, _F.TYPE_UINT64, _F.LABEL_OPTIONAL, None),
        ("max_events", 2, _F.TYPE_UINT64, _F.LABEL_OPTIONAL, None),
        ("tools", 3, _F.TYPE_STRING, _F.LABEL_REPEATED, None),
        ("opts", 4, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".tensorflow.ProfileOptions"),
        ("repository_root", 5, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("session_id", 6, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("host_name", 7, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ],
    "ProfileResponse": [("empty_trace", 7, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None)],
    "TerminateRequest": [("session_id", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None)],
    "TerminateResponse": [],
}


def _message_classes() -> dict[str, type]:
    """The messages above, in a pool of their own beside TensorFlow's ProfileOptions."""
    pool = descriptor_pool.DescriptorPool()
    options_file = descriptor_pb2.FileDescriptorProto.FromString(
        profiler_options_pb2.DESCRIPTOR.serialized_pb
    )
    pool.Add(options_file)
    return declare_messages(
        "tensorflow_serving/profiler_service_messages.proto",
        "tensorflow",
        [options_file.name],
        _MESSAGES,
        pool,
    )


def xplane_file_name(host_name: str) -> str:
    """The trace's file name for `host_name`, as TensorFlow's service names it."""
    return f"{host_name}.xplane.pb".replace(":", "_")


def _is_empty(serialized_xspace: bytes) -> bool:
    """Whether a collected XSpace holds no event at all."""
    space = xplane_pb2.XSpace.FromString(serialized_xspace)
    return not any(line.events for plane in space.planes for line in plane.lines)


def _exported_xspace(scratch: str) -> bytes:
    """The serialized XSpace a ProfilerSession exported under `scratch`."""
    found = glob.glob(os.path.join(scratch, "plugins", "profile", "*", "*.xplane.pb"))
    if len(found) != 1:
        raise status.ServingError(
            grpc.StatusCode.INTERNAL,
            f"the profiler session exported {len(found)} XSpace files, expected one",
        )
    with open(found[0], "rb") as exported:
        return exported.read()


def _session_options(request) -> dict:
    """The tracer levels a ProfilerSession takes, from the request's options (version 0:
    a client that set none, so TensorFlow's defaults)."""
    opts = request.opts
    if not opts.version:
        return {}
    return {
        "host_tracer_level": opts.host_tracer_level,
        "device_tracer_level": opts.device_tracer_level,
        "python_tracer_level": opts.python_tracer_level,
    }


class ProfilerService:
    """Profile, Terminate and Monitor of TensorFlow's ProfilerService, served in process."""

    def __init__(self) -> None:
        self._classes = _message_classes()
        self._lock = threading.Lock()
        # session_id -> set when a Terminate for it arrives.
        self._stops: dict[str, threading.Event] = {}

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """The service's methods for `server.add_generic_rpc_handlers`."""
        classes = self._classes

        def handler(method, request_class: str, response_class: str):
            return grpc.unary_unary_rpc_method_handler(
                method,
                request_deserializer=classes[request_class].FromString,
                response_serializer=classes[response_class].SerializeToString,
            )

        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Profile": handler(self.profile, "ProfileRequest", "ProfileResponse"),
                "Terminate": handler(self.terminate, "TerminateRequest", "TerminateResponse"),
                "Monitor": grpc.unary_unary_rpc_method_handler(self.monitor),
            },
        )

    def profile(self, request, context) -> Completion:
        """Starts recording now; the Completion's response comes when the trace is written."""
        _LOG.info(
            "Profile request: %d ms, session %s, to %s",
            request.opts.duration_ms,
            request.session_id,
            request.repository_root,
        )
        session = _pywrap_profiler.ProfilerSession()
        scratch = tempfile.mkdtemp(prefix="profile-")
        try:
            session.start(scratch, _session_options(request))
        except Exception as error:  # another session records; TF's service says INTERNAL
            shutil.rmtree(scratch, ignore_errors=True)
            raise status.ServingError(grpc.StatusCode.INTERNAL, str(error)) from None
        stop = threading.Event()
        with self._lock:
            self._stops[request.session_id] = stop
        answer = Completion()
        threading.Thread(
            target=self._record,
            args=(session, scratch, request, stop, context, answer),
            name="profiler",
            daemon=True,
        ).start()
        return answer

    def _record(self, session, scratch: str, request, stop, context, answer) -> None:
        """Waits out the duration (or a Terminate), then collects and writes the trace.

        The session exports its XSpace under `scratch` (a run and host name of
        its own choosing), from where it is copied to where the client asked.
        """
        stop.wait(request.opts.duration_ms / 1000)
        with self._lock:
            if self._stops.get(request.session_id) is stop:
                del self._stops[request.session_id]
        try:
            session.export_to_tb()
            if not context.is_active():
                raise status.ServingError(grpc.StatusCode.CANCELLED, "Profile call cancelled")
            answer.set_result(self._write(request, _exported_xspace(scratch)))
        except status.ServingError as error:
            answer.set_exception(error)
        except Exception as error:
            answer.set_exception(status.ServingError(grpc.StatusCode.INTERNAL, str(error)))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _write(self, request, space: bytes):
        """Saves the XSpace where TensorFlow's service saves it; the Profile's response."""
        directory = file_io.join(request.repository_root, request.session_id)
        path = file_io.join(directory, xplane_file_name(request.host_name))
        tf.io.gfile.makedirs(directory)
        with tf.io.gfile.GFile(path, "wb") as handle:
            handle.write(space)
        _LOG.info("Profile of session %s written to %s", request.session_id, path)
        return self._classes["ProfileResponse"](empty_trace=_is_empty(space))

    def terminate(self, request, context):
        """Ends the Profile of `request.session_id` early (no effect when none records)."""
        with self._lock:
            stop = self._stops.get(request.session_id)
        if stop is not None:
            stop.set()
        return self._classes["TerminateResponse"]()

    def monitor(self, request: bytes, context):
        """UNIMPLEMENTED, as TensorFlow's ProfilerService answers Monitor."""
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "unimplemented.")
