"""Servable: what a loaded TensorFlow model offers the request handlers.

SavedModelBundle implements it, and BatchingServable wraps one behind the
same protocol (upstream's BatchingSession is a Session the handlers never
see), so a handler runs a signature the same way with or without batching.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from tensorflow_serving.servables.tensorflow.saved_model_bundle import Aliases, Inputs, Signature
from tensorflow_serving.util.completion import Completion
from tensorflow_serving.util.executors import Runner


class Servable(Protocol):
    """A loaded model version: its signatures, and runs of them.

    Every method may be called from any thread, concurrently.
    """

    export_dir: str
    signatures: Mapping[str, Signature]
    meta_graph_def: object  # tensorflow's MetaGraphDef

    def signature(self, key: str) -> Signature:
        """The signature named `key`; FAILED_PRECONDITION when there is none."""
        ...

    def submit(
        self, signature: Signature, inputs: Inputs, outputs: Aliases, runner: Runner
    ) -> Completion:
        """Runs `signature` on `inputs`; the future's result maps each output alias to an array.

        Preconditions: `inputs` holds exactly the signature's input aliases,
        each with the signature's dtype (predict_util.validate_inputs), and
        `outputs` are output aliases of the signature. The run happens on
        `runner` (util.executors.CALLING_THREAD: before submit returns), or,
        for a batching servable, in a batch that `runner` or the batch
        scheduler runs. Errors come as the future's exception (ServingError
        for anything the request caused); submit itself raises only when the
        run cannot be queued (e.g. the batching queue is full).
        """
        ...

    def close(self) -> None:
        """Frees the model; no run may start afterwards."""
        ...
