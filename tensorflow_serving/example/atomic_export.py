"""Writes a model version so that a server polling the base path never sees half of it.

The model server treats every numeric directory under a model's base path as
a version and loads it as soon as it appears. If an exporter wrote straight
into `<base>/<version>`, the server could load a version whose variables are
still being written, or one left broken by a crash. So an export goes to a
hidden temporary directory next to the target (same file system, name not a
number, so the server ignores it) and is renamed into place in one step once
complete. Renaming a directory is atomic on POSIX file systems.

An existing version is refused unless `overwrite=True`; then, on Linux, the
old and new directories are swapped with one `renameat2(RENAME_EXCHANGE)`, so
the version never disappears from the server's view either.

A failed export deletes its temporary directory; a killed one leaves a hidden
`.export-tmp-*` directory, never a numeric one, and the next export into the
same base path removes such leftovers whose process is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".export-tmp-"
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-(\d+)-")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class VersionExistsError(FileExistsError):
    """The version directory exists and overwriting was not asked for."""


def version_path(base_path: str, version: int, dir_name: str | None = None) -> str:
    """`<base_path>/<version>`, the directory a server loads version `version` from.

    `dir_name` overrides the name, e.g. upstream test data's zero-padded
    "00000123"; it must still be all digits so a server sees a version.
    """
    check_version(version)
    if dir_name is None:
        dir_name = str(version)
    elif not dir_name.isdigit() or int(dir_name) != version:
        raise ValueError(f"version dir name {dir_name!r} does not spell version {version}")
    return os.path.join(base_path, dir_name)


def check_version(version: int) -> int:
    """Versions are positive integers (the chapter's check); returns it or raises ValueError."""
    if isinstance(version, bool) or not isinstance(version, int) or version <= 0:
        raise ValueError(f"model version must be a positive integer, got {version!r}")
    return version


def check_can_export(
    base_path: str, version: int, overwrite: bool = False, dir_name: str | None = None
) -> str:
    """Fails early (before training) if the export would be refused; returns the target."""
    target = version_path(base_path, version, dir_name)
    if os.path.exists(target) and not overwrite:
        raise VersionExistsError(
            f"version {version} already exists at {target}; pass --overwrite to replace it "
            "or choose another --model_version"
        )
    return target


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_dirs(base_path: str) -> list[str]:
    """Deletes temporary export dirs whose exporting process no longer exists."""
    removed = []
    try:
        names = os.listdir(base_path)
    except FileNotFoundError:
        return removed
    for name in names:
        match = _TEMP_NAME.match(name)
        if match and not _pid_alive(int(match.group(2))):
            path = os.path.join(base_path, name)
            shutil.rmtree(path, ignore_errors=True)
            logger.info("removed %s left by an export that did not finish", path)
            removed.append(path)
    return removed


def _exchange(a: str, b: str) -> bool:
    """Atomically swaps two paths with renameat2(RENAME_EXCHANGE); False if unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"renameat2(RENAME_EXCHANGE) {a} <-> {b}: {os.strerror(err)}")


def _move_into_place(source: str, target: str, overwrite: bool, scratch: str) -> None:
    if not os.path.exists(target):
        try:
            # os.rename onto an existing non-empty directory fails, so a
            # version that appears at this very moment is not clobbered.
            os.rename(source, target)
            return
        except OSError:
            if not os.path.exists(target):
                raise
    if not overwrite:
        raise VersionExistsError(
            f"version directory {target} appeared while exporting; not replacing it "
            "without --overwrite"
        )
    if _exchange(source, target):
        # `source` now holds the old version, inside our scratch dir.
        logger.info("replaced %s atomically", target)
        return
    old = os.path.join(scratch, "old")
    os.rename(target, old)
    os.rename(source, target)
    logger.info("replaced %s (old and new renamed one after the other)", target)


@contextlib.contextmanager
def atomic_export(
    base_path: str, version: int, overwrite: bool = False, dir_name: str | None = None
) -> Iterator[str]:
    """Yields a not-yet-existing directory to write the export into; publishes it on success.

        with atomic_export("/tmp/mnist_model", 2) as export_dir:
            builder = tf.saved_model.builder.SavedModelBuilder(export_dir)
            ...
            builder.save()
        # now /tmp/mnist_model/2 exists, complete

    The yielded path does not exist yet because SavedModelBuilder insists on
    creating its directory itself; writers that need it may create it.
    """
    target = check_can_export(base_path, version, overwrite, dir_name)
    os.makedirs(base_path, exist_ok=True)
    remove_stale_temp_dirs(base_path)
    scratch = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{version}-{os.getpid()}-", dir=base_path)
    export_dir = os.path.join(scratch, "export")
    try:
        yield export_dir
        if not os.path.isdir(export_dir):
            raise FileNotFoundError(
                f"the export wrote nothing to {export_dir}; no version {version} published"
            )
        _move_into_place(export_dir, target, overwrite, scratch)
        logger.info("exported version %d to %s", version, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
