"""Copies a local directory tree onto any file system TensorFlow knows (ram://, gs://).

Test-only: tests export models to a local temporary directory, then put
them where the server under test reads them.
"""

from __future__ import annotations

import os

import tensorflow as tf


def copy_tree(source: str, destination: str, last: tuple[str, ...] = ("saved_model.pb",)) -> None:
    """Copies every file under local `source` to `destination` (created as needed).

    Files named in `last` are copied after all the others, so a poller that
    checks for them sees a version only once the rest of it is in place (as
    an uploader that writes saved_model.pb last would).
    """
    files = []
    for directory, _, names in os.walk(source):
        for name in names:
            files.append(os.path.relpath(os.path.join(directory, name), source))
    files.sort(key=lambda relative: os.path.basename(relative) in last)
    for relative in files:
        target = f"{destination.rstrip('/')}/{relative}"
        tf.io.gfile.makedirs(os.path.dirname(target))
        tf.io.gfile.copy(os.path.join(source, relative), target, overwrite=True)
