"""Turns a version directory into a Loader of a SavedModelBundle (upstream:
saved_model_bundle_source_adapter.h), with warmup and optional batching.

With --prefer_tflite_model, a version directory holding `model.tflite` loads
that file as a TfLiteSession instead, as upstream's bundle factory does."""

from __future__ import annotations

import dataclasses
import os
import stat
import time
from collections.abc import Callable

from tensorflow.core.protobuf import config_pb2

from tensorflow_serving.core.loader import Loader
from tensorflow_serving.core.servable_state import ServableId
from tensorflow_serving.servables.tensorflow.idle_warmer import IdleWarmer
from tensorflow_serving.servables.tensorflow.saved_model_bundle import (
    load_saved_model_bundle,
    session_config,
)
from tensorflow_serving.servables.tensorflow.saved_model_warmup import (
    WARMUP_FILE,
    run_saved_model_warmup,
)
from tensorflow_serving.servables.tensorflow.tflite_session import (
    TfLiteOptions,
    has_tflite_model,
    load_tflite_session,
)
from tensorflow_serving.util import file_io, status


@dataclasses.dataclass
class BundleOptions:
    """How every version is loaded: flags --saved_model_tags, --tensorflow_*_parallelism,
    --enable_model_warmup, --num_request_iterations_for_warmup, batching,
    --keep_model_warm_micros, the TfLite flags."""

    tags: tuple[str, ...] = ("serve",)
    config: config_pb2.ConfigProto = dataclasses.field(default_factory=session_config)
    enable_model_warmup: bool = True
    warmup_iterations: int = 1
    # Wraps a loaded bundle (e.g. in a batching servable); None: serve it as is.
    wrap: Callable[[ServableId, object], object] | None = None
    # Reruns the latest request while the server is idle; None: no warming.
    warmer: IdleWarmer | None = None
    # Metrics hooks (ServingMetrics.record_saved_model_load / record_warmup); None: none.
    on_saved_model_load: Callable[[str, bool, float, dict], None] | None = None
    on_warmup: Callable[[str, str, float], None] | None = None
    tflite: TfLiteOptions = dataclasses.field(default_factory=TfLiteOptions)


def directory_fingerprint(path: str) -> tuple:
    """Everything a fix of the version at `path` could change, as a comparable value.

    For the directory itself, each entry in it and each entry of its
    subdirectories (variables/, assets/, ...): the relative name, type and
    permissions, size, mtime and ctime (on file systems named by a scheme:
    type, size and mtime), or the error number when it cannot be examined. The ctime moves with any change to a file or its metadata,
    so a fix that touches only permissions, or restores an old mtime, still
    changes the fingerprint.
    """
    items = [file_io.fingerprint_entry(".", path)]
    for subdirectory in _add_entries(items, path, ""):
        _add_entries(items, file_io.join(path, subdirectory), subdirectory)
    return tuple(sorted(items, key=repr))


def _add_entries(items: list[tuple], directory: str, relative: str) -> list[str]:
    """Adds a key per entry of `directory` (or its error); returns its subdirectories' names."""
    try:
        names = file_io.listdir(directory)
    except OSError as error:
        items.append((relative, "listing", error.errno))
        return []
    subdirectories = []
    for name in names:
        key = file_io.fingerprint_entry(os.path.join(relative, name), file_io.join(directory, name))
        items.append(key)
        if len(key) > 2 and stat.S_ISDIR(key[1]):
            subdirectories.append(name)
    return subdirectories


class SavedModelLoader(Loader):
    def __init__(self, servable_id: ServableId, path: str, options: BundleOptions):
        self.id = servable_id
        self.path = path
        self.options = options
        self.fingerprint = directory_fingerprint(path)

    def _load_model(self) -> object:
        """The version's model: its model.tflite when preferred and present, else its
        SavedModel (whose load on_saved_model_load counts, as TensorFlow's loader does)."""
        options = self.options
        if options.tflite.prefer_tflite_model and has_tflite_model(self.path):
            return load_tflite_session(self.path, options.tflite)
        started = time.perf_counter()
        try:
            bundle = load_saved_model_bundle(
                self.path, options.tags, options.config, options.warmer
            )
        except Exception:
            if options.on_saved_model_load is not None:
                options.on_saved_model_load(self.path, False, time.perf_counter() - started, {})
            raise
        if options.on_saved_model_load is not None:
            options.on_saved_model_load(
                self.path, True, time.perf_counter() - started, bundle.load_stages
            )
        return bundle

    def load(self) -> object:
        options = self.options
        bundle = self._load_model()
        try:
            if options.enable_model_warmup:
                self._warm_up(bundle)
            if self.options.wrap is not None:
                return self.options.wrap(self.id, bundle)
        except BaseException:
            bundle.close()  # a failed load must not keep its session
            raise
        return bundle

    def _warm_up(self, bundle) -> None:
        """Replays the warmup file; its wall time and outcome go to on_warmup (if it has one)."""
        if not file_io.exists(file_io.join(self.path, WARMUP_FILE)):
            return
        started = time.perf_counter()
        outcome = "OK"
        try:
            run_saved_model_warmup(
                self.path, self.id.name, self.id.version, bundle, self.options.warmup_iterations
            )
        except status.ServingError as error:
            outcome = f"{error.code.name}: {error.message}"
            raise
        except Exception as error:
            outcome = f"INTERNAL: {error}"
            raise
        finally:
            if self.options.on_warmup is not None:
                self.options.on_warmup(self.path, outcome, time.perf_counter() - started)
