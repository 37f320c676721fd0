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
# RBD_CG_TEST_DIR3 (the three-OSD cluster, default target/test-cluster3),
# RBD_CG_MIRROR_DIR (the second cluster of tests/mirror.rs, default target/test-cluster-mirror),
# RBD_CG_KEEP_CLUSTER=1 (leave them running afterwards, for debugging),
# RBD_CG_FAULT_ROUNDS (OSD kill rounds per operation in tests/multi_osd_faults.rs, default 1).
#
# Two clusters at once. Everything runs on one OSD, in the foreground. The tests that need
# replicas and OSDs to kill (tests/multi_osd_upgrade.rs, then tests/multi_osd_faults.rs) run
# in the background on one cluster of three OSDs, started with the previous release's class,
# while the one-OSD suite runs: they mostly wait (for OSDs to restart, peer and recover), so
# on 2 cores they cost far less wall time beside the suite than after it. Their output goes
# to DIR3.log and is printed when they are done; the run fails if they fail. With a TESTNAME
# filter the three-OSD part runs only if the filter says multi_osd (multi_osd_upgrade or
# multi_osd_faults: that binary only).
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

export RBD_CG_CLASS_SO=$class_so
export RBD_CG_BIN=$repo/target/debug/rbd-cg

multi_osd=0
[[ $# -gt 0 && " $* " != *multi_osd* ]] || multi_osd=1
dir3=${RBD_CG_TEST_DIR3:-$repo/target/test-cluster3}
# The secondary cluster of the mirroring tests (tests/mirror.rs): the test cluster is their
# primary. No mgr: nothing there needs one, and it saves the foreground a process.
dirm=${RBD_CG_MIRROR_DIR:-$repo/target/test-cluster-mirror}
log3=$dir3.log
multi_pid=''
# A leftover cluster from an interrupted run is ours to replace.
scripts/cluster.sh destroy "$dir" >/dev/null 2>&1 || true
scripts/cluster.sh destroy "$dirm" >/dev/null 2>&1 || true
((multi_osd)) && scripts/cluster.sh destroy "$dir3" >/dev/null 2>&1 || true
cleanup() {
    # The background part, if it still runs (the foreground failed): its whole process group.
    if [[ -n $multi_pid ]] && kill -0 "$multi_pid" 2>/dev/null; then
        kill -TERM -- "-$multi_pid" 2>/dev/null || true
        wait "$multi_pid" 2>/dev/null || true
        echo "the three-OSD part was stopped; its output so far is in $log3" >&2
    fi
    local d
    for d in "$dir" "$dirm" "$dir3"; do
        [[ $d != "$dir3" ]] || ((multi_osd)) || continue
        if [[ ${RBD_CG_KEEP_CLUSTER:-0} == 1 ]]; then
            echo "cluster kept running: eval \"\$(scripts/cluster.sh env $d)\"; stop with scripts/cluster.sh destroy $d" >&2
        else
            scripts/cluster.sh destroy "$d" >/dev/null 2>&1 || true
        fi
    done
}
trap cleanup EXIT

if ((multi_osd)); then
    say "three OSDs in $dir3, in the background: rolling upgrade, then OSD faults (output: $log3)"
    # The test binaries are built already; they run without cargo, so that the foreground's
    # cargo never waits for this one's lock.
    multi_tests=()
    for t in multi_osd_upgrade multi_osd_faults; do
        if [[ " $* " == *" $t "* || " $* " != *" multi_osd_upgrade "* && " $* " != *" multi_osd_faults "* ]]; then
            exe=$(cargo test --locked --no-run --test "$t" 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p')
            [[ -x $exe ]] || { echo "test.sh: no test binary for $t" >&2; exit 1; }
            multi_tests+=("$exe")
        fi
    done
    mkdir -p -- "$(dirname -- "$log3")"
    # Its own process group (set -m), so that cleanup stops all of it.
    set -m
    (
        set -euo pipefail
        started=$SECONDS
        # The upgrade test starts from the previous release's class and leaves this build's
        # on every OSD for the fault test.
        scripts/cluster.sh start "$dir3" --osds 3 --class "$RBD_CG_PREV_CLASS_SO"
        eval "$(scripts/cluster.sh env "$dir3")"
        export RBD_CG_TEST_CLUSTER_DIR=$dir3
        for exe in "${multi_tests[@]}"; do
            # --nocapture: their numbers (operations, kills, records) go to the log.
            "$exe" --nocapture
        done
        printf '\n=== three-OSD part: %s s (cluster start included)\n' "$((SECONDS - started))"
        # Done with it: an idle cluster still costs the foreground CPU.
        [[ ${RBD_CG_KEEP_CLUSTER:-0} == 1 ]] || scripts/cluster.sh destroy "$dir3" >/dev/null 2>&1 || true
    ) >"$log3" 2>&1 &
    multi_pid=$!
    set +m
fi

say "throwaway cluster in $dir, and the mirroring tests' second one in $dirm"
scripts/cluster.sh start "$dir" --class "$class_so"
scripts/cluster.sh start "$dirm" --no-mgr --class "$class_so"
export RBD_CG_MIRROR_CONF=$dirm/ceph.conf RBD_CG_MIRROR_CLUSTER_DIR=$dirm
eval "$(scripts/cluster.sh env "$dir")"
export RBD_CG_TEST_CLUSTER_DIR=$dir

say "tests"
# The multi_osd_ tests need the three-OSD cluster; they run in the background part.
cargo test --workspace --locked "$@" -- --skip multi_osd_

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

if ((multi_osd)); then
    say "waiting for the three-OSD part ($log3)"
    rc=0
    wait "$multi_pid" || rc=$?
    multi_pid=''
    cat -- "$log3" >&2
    if ((rc != 0)); then
        echo "test.sh: the three-OSD part failed (exit $rc)" >&2
        exit 1
    fi
fi
say "all tests passed in $SECONDS s"
