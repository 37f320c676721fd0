#!/usr/bin/env bash
# deps.sh - installs what building and testing cls_rbd_cg needs on Debian/Ubuntu, if missing.
# Ceph daemons and CLIs, the librados/librbd/objclass headers, libclang for bindgen, and the
# Python bindings used by the independent-writer tests. Idempotent; quiet when nothing is missing.
set -euo pipefail

PACKAGES=(
    ceph-mon ceph-osd ceph-mgr ceph-common          # a throwaway cluster and the rados/rbd CLIs
    librados-dev librbd-dev                         # client: librados.h, librbd.h
    rados-objclass-dev libradospp-dev               # class: rados/objclass.h and the buffer.h it includes
    libclang-dev clang                              # bindgen
    python3-rados python3-rbd                       # independent librbd clients in tests
    python3-venv python3-pip                        # target/pyenv: the binding and the Cinder driver (scripts/pyenv.sh)
    qemu-utils libnbd-bin python3-libnbd fio        # userspace NBD clients: this kernel has no nbd module
    g++ pkg-config
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "deps.sh: installing ${missing[*]}" >&2
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "deps.sh: cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }
