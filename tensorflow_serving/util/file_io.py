"""Model files and configs on any file system TensorFlow knows (upstream: tensorflow::Env).

What it promises: a path with a scheme (`gs://`, `ram://`, `file://`,
`hdfs://`, or one a TensorFlow plugin registers) is read through
`tf.io.gfile`; a plain local path through `os`, which reads the same files.
Either way a failure is an `OSError` whose `strerror` says what went wrong,
so callers handle one kind of error whatever the storage.

Why plain paths keep `os`: the supervisor of several server processes parses
config files without importing TensorFlow, and `os.stat` gives what a
version's fingerprint needs (permissions and ctime) that `gfile.stat` lacks.

Threads: every function may be called from any thread; none keeps state.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator

_SCHEME_SEPARATOR = "://"


def has_scheme(path: str) -> bool:
    """Whether `path` names a file system by scheme (`gs://b/m`), rather than a local path."""
    head, separator, _ = path.partition(_SCHEME_SEPARATOR)
    return bool(separator) and head.isidentifier()


def _gfile():
    """tf.io.gfile, imported on first use (only paths with a scheme need TensorFlow)."""
    import tensorflow as tf

    return tf.io.gfile


def _os_error(error: Exception, path: str) -> OSError:
    """A TensorFlow file-system error as the OSError callers handle."""
    import tensorflow as tf

    codes = {
        tf.errors.NotFoundError: errno.ENOENT,
        tf.errors.PermissionDeniedError: errno.EACCES,
        tf.errors.FailedPreconditionError: errno.ENOTDIR,
    }
    number = next((n for kind, n in codes.items() if isinstance(error, kind)), errno.EIO)
    message = getattr(error, "message", None) or str(error)
    return OSError(number, message, path)


def _through_gfile(call, path: str, *args):
    """Calls gfile's `call` on `path`, its errors as OSError."""
    import tensorflow as tf

    try:
        return call(path, *args)
    except tf.errors.OpError as error:
        raise _os_error(error, path) from None


def isdir(path: str) -> bool:
    """Whether `path` is a directory; False when it is missing or cannot be examined."""
    if not has_scheme(path):
        return os.path.isdir(path)
    try:
        return bool(_through_gfile(_gfile().isdir, path))
    except OSError:
        return False


def exists(path: str) -> bool:
    """Whether `path` exists; False when it cannot be examined."""
    if not has_scheme(path):
        return os.path.exists(path)
    try:
        return bool(_through_gfile(_gfile().exists, path))
    except OSError:
        return False


def isfile(path: str) -> bool:
    """Whether `path` exists and is no directory; False when it cannot be examined."""
    if not has_scheme(path):
        return os.path.isfile(path)
    return exists(path) and not isdir(path)


def read_text(path: str, errors: str = "strict") -> str:
    """The whole file as UTF-8 text (`errors` as in bytes.decode).

    Raises OSError when it cannot be read, UnicodeDecodeError for bad UTF-8
    under errors="strict".
    """
    return read_bytes(path).decode("utf-8", errors=errors)


def read_bytes(path: str) -> bytes:
    """The whole file; OSError when it cannot be read."""
    if not has_scheme(path):
        with open(path, "rb") as handle:
            return handle.read()

    def read(name: str) -> bytes:
        with _gfile().GFile(name, "rb") as handle:
            return handle.read()

    return _through_gfile(read, path)


def subdirectories(
    path: str, accept: Callable[[str], bool] = lambda name: True
) -> Iterator[tuple[str, str, OSError | None]]:
    """(name, full path, error) of each entry of `path` that is a directory and whose
    name `accept`s (only those are examined: on object stores each is a request).

    An entry whose type cannot be read is yielded with its error (a
    digit-named symlink loop, say) so the caller can report it. Raises
    OSError when `path` itself cannot be listed.
    """
    if not has_scheme(path):
        yield from _local_subdirectories(path, accept)
        return
    gfile = _gfile()
    for name in _through_gfile(gfile.listdir, path):
        name = name.rstrip("/")
        if not accept(name):
            continue
        full = join(path, name)
        try:
            if _through_gfile(gfile.isdir, full):
                yield name, full, None
        except OSError as error:
            yield name, full, error


def _local_subdirectories(
    path: str, accept: Callable[[str], bool]
) -> Iterator[tuple[str, str, OSError | None]]:
    with os.scandir(path) as entries:
        for entry in entries:
            if not accept(entry.name):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError as error:
                yield entry.name, entry.path, error
                continue
            if is_dir:
                yield entry.name, entry.path, None


def join(base: str, *names: str) -> str:
    """`base` and `names` joined with '/', for local paths and URLs alike."""
    return os.path.join(base, *names)


def fingerprint_entry(relative: str, path: str) -> tuple:
    """What a change to the entry at `path` would change: (relative, type and mode, size,
    mtime, ctime) locally; (relative, is-directory, size, mtime) elsewhere; (relative,
    errno) when it cannot be examined."""
    if not has_scheme(path):
        try:
            info = os.stat(path)
        except OSError as error:
            return (relative, error.errno)
        return (relative, info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    try:
        info = _through_gfile(_gfile().stat, path)
    except OSError as error:
        return (relative, error.errno)
    mode = stat.S_IFDIR if info.is_directory else stat.S_IFREG
    return (relative, mode, info.length, info.mtime_nsec)


def listdir(path: str) -> list[str]:
    """The names in directory `path`; OSError when it cannot be listed."""
    if not has_scheme(path):
        return os.listdir(path)
    return [name.rstrip("/") for name in _through_gfile(_gfile().listdir, path)]
