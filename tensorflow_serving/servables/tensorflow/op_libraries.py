"""Op libraries beyond TensorFlow's own that models may use, registered before any loads.

The stock tensorflow_model_server links TF Text's ops into its binary, so a
SavedModel whose graph tokenizes (WhitespaceTokenizer, FastWordpieceTokenizer,
BertTokenizer, ...) loads there. Importing `tensorflow_text` registers the
same ops with this process's TensorFlow; we do it once, at server start.
"""

from __future__ import annotations

import importlib
import logging
import threading

_LOG = logging.getLogger(__name__)

# Python packages whose import registers op libraries, as upstream links them in.
OP_PACKAGES = ("tensorflow_text",)

_lock = threading.Lock()
_registered: tuple[str, ...] | None = None


def register_op_libraries() -> tuple[str, ...]:
    """Imports each of OP_PACKAGES once per process; returns the ones now registered.

    Idempotent and thread-safe; call it before the first model loads. A
    package that is not installed (or fails to import) is logged as a
    warning and skipped: a model using its ops then fails its load with
    TensorFlow's "Op type not registered" error, and other models serve.
    """
    global _registered
    with _lock:
        if _registered is None:
            _registered = tuple(name for name in OP_PACKAGES if _import(name))
        return _registered


def _import(name: str) -> bool:
    try:
        module = importlib.import_module(name)
    except Exception as error:  # an ImportError, or a library built for another TF
        _LOG.warning(
            "Op library %s not registered (%s): models using its ops will not load", name, error
        )
        return False
    _LOG.info("Registered the ops of %s %s", name, getattr(module, "__version__", ""))
    return True
