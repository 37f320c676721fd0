#!/usr/bin/env bash
# test.sh - the whole test suite, from a fresh clone: installs missing packages, checks
# formatting and lints, builds everything, starts a throwaway Ceph cluster that loads the
# test build of the class, runs every unit and integration test against it, and stops
# only the cluster it started.
#
#   scripts/test.sh                 everything
#   scripts/test.sh -- TESTNAME     pass extra arguments to `cargo test`
#
# Environment: RBD_CG_TEST_DIR (cluster directory, default target/test-cluster),
# RBD_CG_KEEP_CLUSTER=1 (leave it running afterwards, for debugging).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
dir=${RBD_CG_TEST_DIR:-$repo/target/test-cluster}
say() { printf '\n=== %s\n' "$*" >&2; }

[[ ${1:-} == -- ]] && shift

say "dependencies"
scripts/deps.sh

say "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p cls_rbd_cg --features fault-injection --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

say "build"
cargo build --workspace --all-targets --locked
# The class the test cluster loads is the test build: it also registers `test_panic`.
cargo build -p cls_rbd_cg --features fault-injection --locked --target-dir target/fault-injection
class_so=$repo/target/fault-injection/debug/libcls_rbd_cg.so

say "previous release (tests/upgrade.rs starts from it)"
eval "$(scripts/prev-release.sh)"
export RBD_CG_PREV_VERSION RBD_CG_PREV_BIN RBD_CG_PREV_CLASS_SO

say "throwaway cluster in $dir"
# A leftover cluster from an interrupted run is ours to replace.
scripts/cluster.sh destroy "$dir" >/dev/null 2>&1 || true
cleanup() {
    if [[ ${RBD_CG_KEEP_CLUSTER:-0} == 1 ]]; then
        echo "cluster kept running: eval \"\$(scripts/cluster.sh env $dir)\"; stop with scripts/cluster.sh destroy $dir" >&2
    else
        scripts/cluster.sh destroy "$dir" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
scripts/cluster.sh start "$dir" --class "$class_so"
eval "$(scripts/cluster.sh env "$dir")"
export RBD_CG_TEST_CLUSTER_DIR=$dir
export RBD_CG_CLASS_SO=$class_so
export RBD_CG_BIN=$repo/target/debug/rbd-cg

say "tests"
cargo test --workspace --locked "$@"

say "python"
# The Python binding (python/: a PyO3 abi3 extension module, built by maturin as a wheel,
# debug profile like the rest of the test build) in the pinned venv of scripts/pyenv.sh
# (maturin and pytest come from there; system site-packages for python3-rados/-rbd),
# then its tests and the Cinder driver's against the same cluster.
pyenv=$(scripts/pyenv.sh)
rm -f target/wheels/rbd_cg-*.whl
# test-panic: the test build also registers `_panic_for_tests` (a panic must surface as EIO).
"$pyenv/bin/maturin" build --manifest-path python/Cargo.toml --out target/wheels --locked --features test-panic \
    --interpreter "$pyenv/bin/python"
"$pyenv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall target/wheels/rbd_cg-*.whl
# --no-build-isolation: build the pure-Python driver with the venv's setuptools (no download).
"$pyenv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall --no-build-isolation ./cinder
# One pytest run per directory: each has its own conftest.py.
"$pyenv/bin/python" -m pytest -q tests/python
"$pyenv/bin/python" -m pytest -q tests/cinder
