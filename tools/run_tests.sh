#!/usr/bin/env bash
# README command (2): set up, lint, run the whole Bazel test suite, and print
# "N passed, M failed" counted from the test cases' own XML reports.
set -uo pipefail
cd "$(dirname "$0")/.."
. tools/setup.sh || exit 1

lint_failed=0
echo "[test] ruff check + ruff format --check"
if ! ruff check . || ! ruff format --check --quiet .; then
  lint_failed=1
fi

echo "[test] bazel test //..."
bazel test //... "$@"
bazel_rc=$?

python3 tools/test_summary.py --lint-failed="${lint_failed}" bazel-testlogs
summary_rc=$?
bazel shutdown
if [ "${bazel_rc}" -ne 0 ] || [ "${summary_rc}" -ne 0 ] || [ "${lint_failed}" -ne 0 ]; then
  exit 1
fi
