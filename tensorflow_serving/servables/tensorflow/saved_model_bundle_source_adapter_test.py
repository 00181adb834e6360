"""A version's fingerprint changes with any fix of its files, so a failed load is retried."""

import os
import sys

import pytest

from tensorflow_serving.servables.tensorflow.saved_model_bundle_source_adapter import (
    directory_fingerprint,
)
from tensorflow_serving.test_util import testing


@pytest.fixture
def version(tmp_path):
    """A version directory shaped like a SavedModel (the bytes do not matter here)."""
    path = tmp_path / "1"
    (path / "variables").mkdir(parents=True)
    (path / "assets").mkdir()
    (path / "saved_model.pb").write_bytes(b"graph")
    (path / "variables" / "variables.index").write_bytes(b"index")
    (path / "assets" / "vocab.txt").write_bytes(b"words")
    return path


def test_the_fingerprint_is_stable_while_nothing_changes(version):
    assert directory_fingerprint(str(version)) == directory_fingerprint(str(version))


@pytest.mark.parametrize(
    "fix",
    [
        pytest.param(lambda v: os.chmod(v / "variables" / "variables.index", 0o600), id="chmod"),
        pytest.param(lambda v: os.chmod(v / "variables", 0o700), id="chmod-subdirectory"),
        pytest.param(lambda v: os.chmod(v, 0o700), id="chmod-version"),
        pytest.param(lambda v: (v / "assets" / "vocab.txt").write_bytes(b"WORDS"), id="asset"),
        pytest.param(lambda v: (v / "variables" / "variables.index").unlink(), id="removed"),
    ],
)
def test_a_change_of_permissions_contents_or_names_changes_it(version, fix):
    before = directory_fingerprint(str(version))
    fix(version)
    assert directory_fingerprint(str(version)) != before


def test_a_rewrite_that_keeps_size_and_mtime_changes_it_through_the_ctime(version):
    pb = version / "saved_model.pb"
    info = os.stat(pb)
    before = directory_fingerprint(str(version))
    pb.write_bytes(b"GRAPH")
    os.utime(pb, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert (os.stat(pb).st_size, os.stat(pb).st_mtime_ns) == (info.st_size, info.st_mtime_ns)
    assert directory_fingerprint(str(version)) != before


def test_a_missing_version_has_a_fingerprint_too(tmp_path):
    assert directory_fingerprint(str(tmp_path / "gone")) == directory_fingerprint(
        str(tmp_path / "gone")
    )


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
