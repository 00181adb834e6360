"""The source turns version directories into aspired versions, per policy."""

import logging
import os
import sys

import pytest
from google.protobuf import text_format

from tensorflow_serving.sources.storage_path.file_system_storage_path_source import (
    FileSystemStoragePathSource,
    ServableToMonitor,
    ServableVersionPolicy,
    list_versions,
    select_versions,
)
from tensorflow_serving.test_util import testing


def make_versions(base, *names):
    for name in names:
        os.makedirs(os.path.join(base, name), exist_ok=True)


def policy(text):
    return text_format.Parse(text, ServableVersionPolicy())


def test_only_all_digit_directories_are_versions(tmp_path):
    make_versions(tmp_path, "1", "0002", "tmp-3", "abc")
    (tmp_path / "7").write_text("a file, not a directory")
    assert sorted(list_versions(str(tmp_path))) == [1, 2]


def test_an_entry_that_cannot_be_read_is_skipped_and_the_others_are_listed(tmp_path):
    make_versions(tmp_path, "1", "3")
    os.symlink("5", tmp_path / "5")  # a symlink loop: its type cannot be read
    unreadable = {}
    assert sorted(list_versions(str(tmp_path), unreadable)) == [1, 3]
    assert list(unreadable) == [str(tmp_path / "5")]
    assert "Too many levels of symbolic links" in unreadable[str(tmp_path / "5")].strerror


def aspired(calls) -> list[list[int]]:
    return [[sid.version for sid, _ in versions] for _, versions in calls]


def test_an_unreadable_entry_is_logged_once_while_new_versions_keep_coming(tmp_path, caplog):
    calls = []
    source = FileSystemStoragePathSource(lambda name, versions: calls.append((name, versions)))
    make_versions(tmp_path, "1")
    loop = tmp_path / "9"
    os.symlink("9", loop)
    with caplog.at_level(logging.WARNING):
        source.update_config([ServableToMonitor("m", str(tmp_path))])
        make_versions(tmp_path, "2")
        source.poll_once()
        source.poll_once()
    assert aspired(calls) == [[1], [2], [2]], "every poll happened, and saw version 2"
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 1, skipped
    assert f"skipping {loop} of servable m, which cannot be read" in skipped[0]

    caplog.clear()
    os.remove(loop)
    source.poll_once()
    os.symlink("9", loop)
    source.poll_once()
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 1, "broken again: logged"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("", [3]),
        ("latest { num_versions: 2 }", [2, 3]),
        ("all {}", [1, 2, 3]),
        ("specific { versions: 1 versions: 3 versions: 9 }", [1, 3]),
    ],
)
def test_version_policies(tmp_path, text, expected):
    make_versions(tmp_path, "1", "2", "3")
    chosen = select_versions(policy(text), list_versions(str(tmp_path)))
    assert sorted(chosen) == expected


def test_missing_base_path_keeps_current_versions_and_retries(tmp_path):
    calls = []
    source = FileSystemStoragePathSource(lambda name, versions: calls.append((name, versions)))
    base = tmp_path / "model"
    source.update_config([ServableToMonitor("m", str(base))])
    assert calls == []  # nothing said: the manager keeps what it has
    make_versions(base, "5")
    source.poll_once()
    assert [(n, [sid.version for sid, _ in vs]) for n, vs in calls] == [("m", [5])]


def test_dropped_model_gets_empty_aspired_list(tmp_path):
    calls = []
    source = FileSystemStoragePathSource(lambda name, versions: calls.append((name, versions)))
    make_versions(tmp_path / "a", "1")
    make_versions(tmp_path / "b", "1")
    source.update_config(
        [ServableToMonitor("a", str(tmp_path / "a")), ServableToMonitor("b", str(tmp_path / "b"))]
    )
    calls.clear()
    source.update_config([ServableToMonitor("a", str(tmp_path / "a"))])
    assert ("b", []) in calls


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
