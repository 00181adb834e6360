"""The "N passed, M failed" line CI reads: counted from this run's targets only."""

import pathlib
import sys

from tensorflow_serving.test_util import testing
from tools import test_summary


def _report(path: pathlib.Path, cases: dict[str, str]) -> None:
    """A JUnit report at `path` with a case per name: 'pass', 'fail' or 'skip'."""
    body = {
        "pass": "",
        "fail": "<failure message='boom'/>",
        "skip": "<skipped message='no engine'/>",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    cases_xml = "".join(
        f"<testcase classname='c' name='{name}'>{body[kind]}</testcase>"
        for name, kind in cases.items()
    )
    path.write_text(f"<testsuites><testsuite>{cases_xml}</testsuite></testsuites>")


def test_only_the_runs_targets_count(tmp_path):
    logs = tmp_path / "bazel-testlogs"
    _report(logs / "pkg" / "a" / "test.xml", {"one": "pass", "two": "pass"})
    _report(logs / "pkg" / "sharded" / "shard_1_of_2" / "test.xml", {"s1": "pass"})
    _report(logs / "pkg" / "sharded" / "shard_2_of_2" / "test.xml", {"s2": "skip"})
    # A target deleted since an earlier run left its failed report behind.
    _report(logs / "pkg" / "gone" / "test.xml", {"old": "fail"})
    # Package pkg/a's own test is not a report of the target //pkg:a.
    _report(logs / "pkg" / "a" / "nested_test" / "test.xml", {"nested": "pass"})

    # A target left out by a size filter has no report and adds nothing.
    labels = ["//pkg:a", "//pkg:sharded", "//pkg:filtered_out"]
    passed, failed, failures, skips = test_summary.count_cases(logs, labels)
    assert (passed, failed, failures) == (3, 0, [])
    assert skips == ["c::s2: no engine"]

    # Without the labels every report counts, the stale one too.
    passed, failed, failures, _ = test_summary.count_cases(logs)
    assert (passed, failed, failures) == (4, 1, ["c::old"])


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
