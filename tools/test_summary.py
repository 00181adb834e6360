"""Counts test cases from Bazel's per-target XML reports.

CI reads only the closing "N passed, M failed" line, so it must come from the
test cases themselves (pytest writes JUnit XML where Bazel asks it to), not
from Bazel's per-target summary.
"""

import argparse
import pathlib
import sys
import xml.etree.ElementTree as ET


def count_cases(testlogs: pathlib.Path) -> tuple[int, int, int, list[str]]:
    """Returns (passed, failed, skipped, names of failed cases)."""
    passed = failed = skipped = 0
    failures: list[str] = []
    for report in sorted(testlogs.rglob("test.xml")):
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
            elif case.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
    return passed, failed, skipped, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("testlogs", type=pathlib.Path)
    parser.add_argument("--lint-failed", type=int, default=0)
    args = parser.parse_args()
    passed, failed, skipped, failures = count_cases(args.testlogs)
    # The lint check counts as one test case of its own.
    if args.lint_failed:
        failed += 1
        failures.append("lint::ruff")
    else:
        passed += 1
    for name in failures:
        print(f"FAILED {name}")
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
