"""Turns a version directory into a Loader of a SavedModelBundle (upstream:
saved_model_bundle_source_adapter.h), with warmup and optional batching."""

from __future__ import annotations

import dataclasses
import os
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


@dataclasses.dataclass
class BundleOptions:
    """How every version is loaded: flags --saved_model_tags, --tensorflow_*_parallelism,
    --enable_model_warmup, --num_request_iterations_for_warmup, batching,
    --keep_model_warm_micros."""

    tags: tuple[str, ...] = ("serve",)
    config: config_pb2.ConfigProto = dataclasses.field(default_factory=session_config)
    enable_model_warmup: bool = True
    warmup_iterations: int = 1
    # Wraps a loaded bundle (e.g. in a batching servable); None: serve it as is.
    wrap: Callable[[ServableId, object], object] | None = None
    # Reruns the latest request while the server is idle; None: no warming.
    warmer: IdleWarmer | None = None


def directory_fingerprint(path: str) -> tuple:
    """Names, sizes and mtimes of the files that decide what loads from `path`."""
    items = []
    for sub in ("", "variables"):
        directory = os.path.join(path, sub)
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_file():
                        info = entry.stat()
                        items.append((sub, entry.name, info.st_size, info.st_mtime_ns))
        except OSError:
            items.append((sub, None))
    return tuple(sorted(items, key=repr))


class SavedModelLoader(Loader):
    def __init__(self, servable_id: ServableId, path: str, options: BundleOptions):
        self.id = servable_id
        self.path = path
        self.options = options
        self.fingerprint = directory_fingerprint(path)

    def load(self) -> object:
        bundle = load_saved_model_bundle(
            self.path, self.options.tags, self.options.config, self.options.warmer
        )
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
