"""Servable identity and the states a version goes through (upstream: servable_id.h,
servable_state.h), as GetModelStatus reports them."""

from __future__ import annotations

import dataclasses
import enum

from tensorflow_serving.util.status import ServingError


@dataclasses.dataclass(frozen=True, order=True)
class ServableId:
    """A model name and one of its versions."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{{name: {self.name} version: {self.version}}}"


class ManagerState(enum.IntEnum):
    """Values match tensorflow.serving.ModelVersionStatus.State."""

    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclasses.dataclass(frozen=True)
class ServableState:
    """One version's state; `error` is set when it ended because loading failed."""

    id: ServableId
    state: ManagerState
    error: ServingError | None = None
