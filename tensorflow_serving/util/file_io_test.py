"""file_io: the same answers for local paths and for paths on TensorFlow's file systems."""

import errno
import os
import sys
import uuid

import pytest
import tensorflow as tf

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import file_io


@pytest.fixture(params=["local", "ram", "file_url"])
def root(request, tmp_path) -> str:
    """An empty directory: a plain path, one on TensorFlow's in-memory file system, and
    a file:// URL (TensorFlow's local file system)."""
    if request.param == "local":
        return str(tmp_path)
    if request.param == "file_url":
        return f"file://{tmp_path}"
    path = f"ram://file_io_test/{uuid.uuid4().hex}"
    tf.io.gfile.makedirs(path)
    return path


def _write(path: str, data: bytes) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "wb") as handle:
        handle.write(data)


def test_has_scheme():
    assert file_io.has_scheme("gs://bucket/models")
    assert file_io.has_scheme("ram://x")
    assert file_io.has_scheme("file:///tmp/x")
    assert not file_io.has_scheme("/tmp/models")
    assert not file_io.has_scheme("models/1")
    assert not file_io.has_scheme("/tmp/a://b")


def test_subdirectories_lists_accepted_directories_only(root):
    _write(file_io.join(root, "1", "saved_model.pb"), b"x")
    _write(file_io.join(root, "20", "variables", "v"), b"x")
    _write(file_io.join(root, "notes", "readme"), b"x")
    _write(file_io.join(root, "3"), b"a file, not a version")
    found = {name: path for name, path, error in file_io.subdirectories(root, str.isdigit)}
    assert found == {"1": file_io.join(root, "1"), "20": file_io.join(root, "20")}


def test_listing_a_missing_directory_is_an_os_error(root):
    missing = file_io.join(root, "missing")
    with pytest.raises(OSError) as raised:
        list(file_io.subdirectories(missing))
    assert raised.value.errno == errno.ENOENT
    assert raised.value.strerror
    assert not file_io.isdir(missing)
    assert not file_io.exists(missing)


def test_read_text_and_bytes(root):
    path = file_io.join(root, "config.txt")
    _write(path, b"model_config_list {}\n")
    assert file_io.exists(path)
    assert file_io.isfile(path)
    assert not file_io.isdir(path)
    assert not file_io.isfile(root)
    assert file_io.read_text(path) == "model_config_list {}\n"
    assert file_io.read_bytes(path) == b"model_config_list {}\n"
    with pytest.raises(OSError) as raised:
        file_io.read_text(file_io.join(root, "nope.txt"))
    assert raised.value.errno == errno.ENOENT


def test_read_text_undecodable(root):
    path = file_io.join(root, "bad.txt")
    _write(path, b"\xff\xfe")
    with pytest.raises(UnicodeDecodeError):
        file_io.read_text(path)
    assert file_io.read_text(path, errors="replace") == "\ufffd\ufffd"


def test_fingerprint_entry_changes_with_the_file(root):
    path = file_io.join(root, "saved_model.pb")
    _write(path, b"one")
    before = file_io.fingerprint_entry("saved_model.pb", path)
    _write(path, b"three")
    assert file_io.fingerprint_entry("saved_model.pb", path) != before
    assert file_io.fingerprint_entry("x", file_io.join(root, "x")) == ("x", errno.ENOENT)
    assert sorted(file_io.listdir(root)) == ["saved_model.pb"]


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
