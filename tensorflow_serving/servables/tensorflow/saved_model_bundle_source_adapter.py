"""Turns a version directory into a Loader of a SavedModelBundle (upstream:
saved_model_bundle_source_adapter.h), with warmup and optional batching.

With --prefer_tflite_model, a version directory holding `model.tflite` loads
that file as a TfLiteSession instead, as upstream's bundle factory does."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Callable

from tensorflow.core.protobuf import config_pb2

from tensorflow_serving.core.loader import Loader
from tensorflow_serving.core.servable_state import ServableId
from tensorflow_serving.servables.tensorflow.idle_warmer import IdleWarmer
from tensorflow_serving.servables.tensorflow.saved_model_bundle import (
    load_saved_model_bundle,
    session_config,
)
from tensorflow_serving.servables.tensorflow.saved_model_warmup import run_saved_model_warmup
from tensorflow_serving.servables.tensorflow.tflite_session import (
    TfLiteOptions,
    has_tflite_model,
    load_tflite_session,
)


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
    tflite: TfLiteOptions = dataclasses.field(default_factory=TfLiteOptions)


def directory_fingerprint(path: str) -> tuple:
    """Everything a fix of the version at `path` could change, as a comparable value.

    For the directory itself, each entry in it and each entry of its
    subdirectories (variables/, assets/, ...): the relative name, type and
    permissions, size, mtime and ctime, or the error number when it cannot
    be examined. The ctime moves with any change to a file or its metadata,
    so a fix that touches only permissions, or restores an old mtime, still
    changes the fingerprint.
    """
    items = [_stat_key(".", path)]
    for subdirectory in _add_entries(items, path, ""):
        _add_entries(items, os.path.join(path, subdirectory), subdirectory)
    return tuple(sorted(items, key=repr))


def _stat_key(relative: str, full_path: str) -> tuple:
    try:
        info = os.stat(full_path)
    except OSError as error:
        return (relative, error.errno)
    return (relative, info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _add_entries(items: list[tuple], directory: str, relative: str) -> list[str]:
    """Adds a key per entry of `directory` (or its error); returns its subdirectories' names."""
    try:
        names = os.listdir(directory)
    except OSError as error:
        items.append((relative, "listing", error.errno))
        return []
    subdirectories = []
    for name in names:
        key = _stat_key(os.path.join(relative, name), os.path.join(directory, name))
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
        """The version's model: its model.tflite when preferred and present, else its SavedModel."""
        if self.options.tflite.prefer_tflite_model and has_tflite_model(self.path):
            return load_tflite_session(self.path, self.options.tflite)
        return load_saved_model_bundle(
            self.path, self.options.tags, self.options.config, self.options.warmer
        )

    def load(self) -> object:
        bundle = self._load_model()
        try:
            if self.options.enable_model_warmup:
                run_saved_model_warmup(
                    self.path, self.id.name, self.id.version, bundle, self.options.warmup_iterations
                )
            if self.options.wrap is not None:
                return self.options.wrap(self.id, bundle)
        except BaseException:
            bundle.close()  # a failed load must not keep its session
            raise
        return bundle
