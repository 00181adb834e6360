"""Model weights as a NumPy .npz file, assigned back to variables by index.

The chapter's first way to keep a trained model: fetch the weight arrays with
`sess.run`, `np.savez` them, and later `assign` the loaded arrays to freshly
built variables in the same order. The file knows nothing about the graph, so
the only link between an array and its variable is its position; that is why
a wrong count or shape must be a clear error naming the index, never a
silently mis-wired model.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

_ARRAY_KEY = re.compile(r"arr_(\d+)")


class WeightMismatchError(ValueError):
    """Loaded weights do not fit the model's parameters (count or shape)."""


def save_weights(path: str, weights: Sequence[np.ndarray]) -> str:
    """Saves arrays in order as arr_0, arr_1, ...; returns the file name written (.npz)."""
    if not path.endswith(".npz"):
        path += ".npz"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, *[np.asarray(w) for w in weights])
    logger.info("saved %d weight arrays to %s", len(weights), path)
    return path


def load_weights(path: str) -> list[np.ndarray]:
    """Loads the arrays of an .npz file, ordered by their arr_<i> index."""
    if not path.endswith(".npz") and not os.path.exists(path):
        path += ".npz"
    with np.load(path, allow_pickle=False) as archive:
        indexed = []
        for key in archive.files:
            match = _ARRAY_KEY.fullmatch(key)
            if match is None:
                raise WeightMismatchError(
                    f"{path} holds an array named {key!r}; expected only arr_0, arr_1, ... "
                    "as np.savez(path, *weights) writes them"
                )
            indexed.append((int(match.group(1)), archive[key]))
    indexed.sort(key=lambda item: item[0])
    if [i for i, _ in indexed] != list(range(len(indexed))):
        raise WeightMismatchError(
            f"{path} has arrays {[f'arr_{i}' for i, _ in indexed]}; the indices must run 0..N-1"
        )
    return [array for _, array in indexed]


def check_weights(parameters: Sequence[Any], weights: Sequence[np.ndarray]) -> None:
    """Raises WeightMismatchError unless weight i has the shape of parameter i, for all i."""
    if len(weights) != len(parameters):
        raise WeightMismatchError(
            f"got {len(weights)} weight arrays but the model has {len(parameters)} parameters"
        )
    for i, (param, weight) in enumerate(zip(parameters, weights, strict=True)):
        want = tuple(param.shape.as_list())
        got = tuple(np.shape(weight))
        if want != got:
            raise WeightMismatchError(
                f"weight {i} has shape {got} but parameter {i} ({param.name}) has shape {want}"
            )


def assign_weights(sess: Any, parameters: Sequence[Any], weights: Sequence[np.ndarray]) -> None:
    """Assigns weights[i] to parameters[i] in sess, after checking count and shapes."""
    check_weights(parameters, weights)
    for i, (param, weight) in enumerate(zip(parameters, weights, strict=True)):
        logger.debug("weight index %d, shape %s -> %s", i, np.shape(weight), param.name)
        sess.run(param.assign(weight))
