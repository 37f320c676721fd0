#!/usr/bin/env bash
# bench.sh - rbd-cg against stock `rbd group` on one throwaway cluster, in one run.
#
# Builds the class and the CLI in release mode, starts a throwaway cluster whose OSD loads
# the release class, and runs the harness in client/benches/compare.rs: identical groups
# for both tools (separate images), the two alternated run by run, medians and ratios
# (ours / stock); the raw class round trip (10,000 interleaved calls of rbd_cg.get_version
# and hello.say_hello). The report (markdown) goes to stdout and target/bench-report.md;
# docs/BENCHMARKS.md holds a recorded one. Destroys its cluster at the end.
#
# Usage: scripts/bench.sh [--reps N] [--scale] [--no-compare] [--no-round-trip]
# Environment: RBD_CG_BENCH_DIR (cluster directory, default target/bench-cluster).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
dir=${RBD_CG_BENCH_DIR:-$repo/target/bench-cluster}

scripts/deps.sh
echo "== building (release)" >&2
cargo build --release --locked -p cls_rbd_cg -p rbd_cg_cli
cargo bench --locked -p rbd_cg_client --bench compare --no-run
scripts/cluster.sh destroy "$dir" >/dev/null 2>&1 || true
trap 'scripts/cluster.sh destroy "$dir" >/dev/null 2>&1 || true' EXIT
scripts/cluster.sh start "$dir" --class "$repo/target/release/libcls_rbd_cg.so"
eval "$(scripts/cluster.sh env "$dir")"

{
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "Ceph: $(ceph --version | cut -d' ' -f1-3), 1 mon + 1 osd (bluestore on a sparse file), pool size 1"
    echo "Command: scripts/bench.sh $*"
    echo
    RBD_CG_BIN=$repo/target/release/rbd-cg cargo bench --locked -q -p rbd_cg_client --bench compare -- "$@"
} | tee target/bench-report.md
