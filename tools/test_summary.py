"""Counts test cases from Bazel's per-target XML reports.

CI reads only the closing "N passed, M failed" line, so it must come from the
test cases themselves (pytest writes JUnit XML where Bazel asks it to), not
from Bazel's per-target summary.
"""

import argparse
import pathlib
import re
import sys
import xml.etree.ElementTree as ET

# The directories Bazel puts between a target's and its reports (--runs_per_test, shards);
# anything else below a target's directory belongs to a package of the same path.
_RUN_OR_SHARD = re.compile(r"(run|shard)_\d+_of_\d+")


def target_reports(testlogs: pathlib.Path, labels: list[str] | None) -> list[pathlib.Path]:
    """The test.xml reports to count.

    With `labels` ("//pkg:name", as `bazel query 'tests(//...)'` prints them),
    only those targets' reports (shards and attempts included): bazel-testlogs
    keeps the reports of targets deleted since, which this run did not test.
    A target without a report adds nothing: a run filtered by size or tag
    leaves some out, and a test that could not run fails `bazel test` itself.
    Without labels, every report under `testlogs`.
    """
    if labels is None:
        return sorted(testlogs.rglob("test.xml"))
    reports: list[pathlib.Path] = []
    for label in labels:
        package, _, name = label.removeprefix("//").partition(":")
        target = testlogs / package / name
        reports.extend(
            report
            for report in sorted(target.rglob("test.xml"))
            if all(
                _RUN_OR_SHARD.fullmatch(part) for part in report.parent.relative_to(target).parts
            )
        )
    return reports


def count_cases(
    testlogs: pathlib.Path, labels: list[str] | None = None
) -> tuple[int, int, list[str], list[str]]:
    """Returns (passed, failed, names of failed cases, skipped cases with the reason),
    over target_reports(testlogs, labels)."""
    passed = failed = 0
    failures: list[str] = []
    skips: list[str] = []
    for report in target_reports(testlogs, labels):
        try:
            root = ET.parse(report).getroot()
        except ET.ParseError:
            failed += 1
            failures.append(f"{report.parent}: unreadable test.xml")
            continue
        for case in root.iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                failures.append(name)
            elif (skipped := case.find("skipped")) is not None:
                skips.append(f"{name}: {skipped.get('message', '')}")
            else:
                passed += 1
    return passed, failed, failures, skips


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("testlogs", type=pathlib.Path)
    parser.add_argument("--lint-failed", type=int, default=0)
    parser.add_argument(
        "--targets",
        type=pathlib.Path,
        help="a file of the test targets' labels, one per line: count only their reports",
    )
    args = parser.parse_args()
    labels = None
    if args.targets:
        labels = [line.strip() for line in args.targets.read_text().splitlines() if line.strip()]
    passed, failed, failures, skips = count_cases(args.testlogs, labels)
    # The lint check counts as one test case of its own.
    if args.lint_failed:
        failed += 1
        failures.append("lint::ruff")
    else:
        passed += 1
    for name in skips:
        print(f"SKIPPED {name}")
    for name in failures:
        print(f"FAILED {name}")
    line = f"{passed} passed, {failed} failed"
    if skips:
        line += f", {len(skips)} skipped"
    print(line)
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
