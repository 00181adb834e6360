#!/usr/bin/env bash
# Makes this machine able to build and run docker/'s images with no Docker
# daemon and no image registry: installs podman (Debian's), configures it for
# this kind of sandbox, and builds the base images `debian:bookworm` and
# `debian:bookworm-slim` locally with debootstrap from the Debian mirror apt
# already uses. Idempotent; about a minute the first time, as root.
# tools/run_tests.sh runs it before the image tests (docker/image_test.py).
#
#   bash tools/container_engine.sh
#   podman build --network=host --format docker --pull=never -f docker/Dockerfile -t tf_serving_py .
#
# Exit status: 0 ready; 2 podman is not there and cannot be installed here
# (not root, no apt-get, or apt-get cannot install it): the image tests then
# report themselves skipped; 1 anything else failed (the image tests fail).
#
# Why each setting: this sandbox's root cannot raise resource limits (podman's
# default ulimits fail with EPERM), crun refuses its hybrid cgroup layout (runc
# copes), builds need the host network to reach the package registries,
# `--format docker` keeps HEALTHCHECK, `--pull=never` uses the local base
# images. Egress TLS may be intercepted by a CA the host trusts: the base
# images trust the host's extra CAs too.
set -euo pipefail

_work="${CONTAINER_WORK:-/var/tmp/container-base}"
_step() { echo "[container-engine] $*"; }
_unavailable() { echo "[container-engine] UNAVAILABLE: $*" >&2; exit 2; }

_have_base_images() {
  podman image exists docker.io/library/debian:bookworm 2>/dev/null \
    && podman image exists docker.io/library/debian:bookworm-slim 2>/dev/null
}

# Installs what is missing of podman and the tools the base images need.
_install_packages() {
  local tool missing=()
  for tool in podman buildah debootstrap runc; do
    command -v "${tool}" >/dev/null 2>&1 || missing+=("${tool}")
  done
  [ "${#missing[@]}" -eq 0 ] && return
  [ "$(id -u)" -eq 0 ] || _unavailable "${missing[*]} not installed, and installing needs root"
  command -v apt-get >/dev/null 2>&1 || _unavailable "${missing[*]} not installed, and there is no apt-get"
  _step "apt: installing podman, buildah, debootstrap, runc"
  apt-get update -q >/dev/null || _unavailable "apt-get update failed (no Debian mirror?)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    podman buildah debootstrap uidmap fuse-overlayfs slirp4netns runc >/dev/null \
    || _unavailable "apt-get install podman failed"
}

_configure() {
  [ "$(id -u)" -eq 0 ] || return 0
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
}

# Imports root file system $1 as image $2, with the environment Docker Hub's
# debian images have plus the CA bundle for pip and npm.
_import() {
  local changes=(
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt'
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt'
    --change 'CMD ["bash"]'
  )
  tar -C "$1" -c . | podman import --quiet "${changes[@]}" - "$2" >/dev/null
}

_build_base_images() {
  local mirror rootfs slim
  mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
  [ -n "${mirror}" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
  rootfs="${_work}/rootfs"
  slim="${_work}/rootfs-slim"
  rm -rf "${_work}" && mkdir -p "${_work}"
  _step "debootstrap: debian:bookworm from ${mirror}"
  debootstrap --variant=minbase bookworm "${rootfs}" "${mirror}" >/dev/null
  rm -f "${rootfs}/etc/apt/sources.list"
  cp /etc/apt/sources.list.d/*.sources "${rootfs}/etc/apt/sources.list.d/" 2>/dev/null \
    || cp /etc/apt/sources.list "${rootfs}/etc/apt/"
  mkdir -p "${rootfs}/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "${rootfs}/usr/local/share/ca-certificates/" 2>/dev/null || true
  rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/*.bin
  _import "${rootfs}" docker.io/library/debian:bookworm
  # -slim: Docker Hub's recipe, no docs, man pages or locales (now or later).
  cp -a "${rootfs}" "${slim}"
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
    'path-exclude /usr/share/locale/*' > "${slim}/etc/dpkg/dpkg.cfg.d/docker"
  find "${slim}/usr/share/doc" -mindepth 2 ! -name copyright -delete
  rm -rf "${slim}"/usr/share/{man,info,locale}/*
  _import "${slim}" docker.io/library/debian:bookworm-slim
  rm -rf "${_work}"
}

_install_packages
_configure
if _have_base_images; then
  _step "podman and the local debian base images are ready"
  exit 0
fi
_build_base_images
_step "ready: podman $(podman --version | awk '{print $3}'), debian:bookworm and debian:bookworm-slim built locally"
