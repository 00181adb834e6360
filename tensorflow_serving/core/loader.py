"""The Loader interface: how the manager turns a version on disk into a servable."""

from __future__ import annotations

import abc


class Loader(abc.ABC):
    """Loads and unloads one servable version; the manager calls it on its threads."""

    #: Changes when the files behind the version change, so that a version that
    #: failed to load is tried again once it has been fixed on disk.
    fingerprint: object = None

    @abc.abstractmethod
    def load(self) -> object:
        """Returns the ready servable, or raises (ServingError preferred)."""

    def unload(self, servable: object) -> None:
        """Frees what load() took. Called once no request uses the servable."""
        close = getattr(servable, "close", None)
        if close is not None:
            close()
