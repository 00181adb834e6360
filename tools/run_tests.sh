#!/usr/bin/env bash
# README command (2): set up, lint, run the whole Bazel test suite and the
# image tests, and print "N passed, M failed" counted from the test cases' own
# XML reports.
#
# The image tests (//docker:image_test, tag manual) build and run docker/'s
# images with podman, which tools/container_engine.sh installs first (root,
# about a minute once). They report themselves skipped when podman cannot be
# installed here, or with IMAGE_TESTS=0 (set inside the devel image, where no
# container engine runs). Arguments go to `bazel test`, e.g.
# --test_size_filters=small for the quick part, which leaves them out.
set -uo pipefail
cd "$(dirname "$0")/.."
. tools/setup.sh || exit 1

lint_failed=0
echo "[test] ruff check + ruff format --check"
if ! ruff check . || ! ruff format --check --quiet .; then
  lint_failed=1
fi

engine_status=0
if [ "${IMAGE_TESTS:-1}" = 0 ]; then
  echo "[test] IMAGE_TESTS=0: no container engine here, the image tests skip themselves"
else
  echo "[test] podman for the image tests: tools/container_engine.sh"
  bash tools/container_engine.sh
  engine_status=$?
fi

echo "[test] bazel test //... //docker:image_test"
bazel test //... //docker:image_test \
  --test_env=IMAGE_TESTS="${IMAGE_TESTS:-1}" \
  --test_env=CONTAINER_ENGINE_STATUS="${engine_status}" \
  "$@"
bazel_rc=$?

# Only this run's targets: bazel-testlogs also keeps reports of deleted ones.
targets_file="$(mktemp)"
targets=(--targets="${targets_file}")
if ! bazel query 'tests(//...) union //docker:image_test' --output=label \
    >"${targets_file}" 2>/dev/null; then
  echo "[test] bazel query failed: counting every report in bazel-testlogs"
  targets=()
fi
python3 tools/test_summary.py --lint-failed="${lint_failed}" "${targets[@]}" bazel-testlogs
summary_rc=$?
rm -f "${targets_file}"
bazel shutdown
if [ "${bazel_rc}" -ne 0 ] || [ "${summary_rc}" -ne 0 ] || [ "${lint_failed}" -ne 0 ]; then
  exit 1
fi
