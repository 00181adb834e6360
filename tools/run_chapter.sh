#!/usr/bin/env bash
# README command (1): the chapter end to end on a fresh machine. Set up, train
# the CNN and export versions 1 and 2, serve them with tensorflow_model_server
# on port 8000, and query it with mnist_client --num_tests=1000.
set -uo pipefail
cd "$(dirname "$0")/.."
. tools/setup.sh || exit 1

MODEL_DIR="${MODEL_DIR:-/tmp/mnist_model}"
WORK_DIR="${WORK_DIR:-/tmp}"
PORT="${PORT:-8000}"
# Version 1 trains as long as the chapter does; version 2 is the same CNN
# trained longer (test accuracy ~0.97 instead of ~0.955 on the fallback digits), as a retrained model would be.
ITERATIONS_V1="${ITERATIONS_V1:-1000}"
ITERATIONS_V2="${ITERATIONS_V2:-3000}"
server_pid=""

finish() {
  local rc=$?
  if [ -n "${server_pid}" ] && kill -0 "${server_pid}" 2>/dev/null; then
    echo "[chapter] stopping tensorflow_model_server (pid ${server_pid})"
    kill -TERM "${server_pid}"
    wait "${server_pid}" 2>/dev/null
  fi
  bazel shutdown 2>/dev/null
  exit "${rc}"
}
trap finish EXIT

echo "[chapter] bazel build"
bazel build //tensorflow_serving/example:serving_model_ch4 \
  //tensorflow_serving/example:mnist_client \
  //tensorflow_serving/model_servers:tensorflow_model_server || exit 1

for version in 1 2; do
  iterations="ITERATIONS_V${version}"
  if [ -d "${MODEL_DIR}/${version}" ]; then
    echo "[chapter] ${MODEL_DIR}/${version} exists; keeping it"
    continue
  fi
  echo "[chapter] training and exporting version ${version}"
  bazel-bin/tensorflow_serving/example/serving_model_ch4 \
    --training_iteration="${!iterations}" --model_version="${version}" \
    --work_dir="${WORK_DIR}" "${MODEL_DIR}" || exit 1
done

echo "[chapter] starting tensorflow_model_server on port ${PORT}"
bazel-bin/tensorflow_serving/model_servers/tensorflow_model_server \
  --port="${PORT}" --model_name=mnist --model_base_path="${MODEL_DIR}" &
server_pid=$!

echo "[chapter] querying with mnist_client"
bazel-bin/tensorflow_serving/example/mnist_client --num_tests=1000 \
  --server="localhost:${PORT}" --work_dir="${WORK_DIR}" --wait_for_server_seconds=120
