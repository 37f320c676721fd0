#!/usr/bin/env bash
# soak.sh - the concurrency soak of issue #14, bounded in time and not part of scripts/test.sh:
# 8 clients for 60 s racing group create/rename/rm (plain and --force), image add/rm and snap
# create/rm/rename on the same groups (tests/races.rs, racing_group_create_rename_and_rm_...),
# then the same clients on the original leak race (image add/rm, snap create/rm/rename on three
# fixed groups: racing_clients_leave_no_unrecorded_member_snapshots). Afterwards `repair --check`
# must be clean on every group, directory and objects must agree, and no member snapshot or
# back-reference may be orphaned; the tests assert exactly that.
#
#   scripts/soak.sh [--workers N] [--seconds S] [--osds N] [--keep]
#
# It builds what it needs, starts a throwaway cluster of its own (target/soak-cluster, 1 OSD by
# default; --osds 3 for a replicated one), runs the two tests and destroys the cluster (--keep
# leaves it running). Takes about 2 x S seconds plus the build and ~15 s of cluster start.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
workers=8 seconds=60 osds=1 keep=0
while (($#)); do
    case $1 in
        --workers) workers=$2; shift ;;
        --seconds) seconds=$2; shift ;;
        --osds) osds=$2; shift ;;
        --keep) keep=1 ;;
        -h | --help) sed -n '2,/^set -/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//;/^set -/d'; exit 0 ;;
        *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
dir=${RBD_CG_SOAK_DIR:-$repo/target/soak-cluster}

# The same build as scripts/test.sh and the dev loop (a narrower -p build unifies features
# differently and recompiles the workspace).
cargo build --workspace --all-targets --locked
cargo build --locked -p cls_rbd_cg --features fault-injection --target-dir target/fault-injection
class_so=$repo/target/fault-injection/debug/libcls_rbd_cg.so

scripts/cluster.sh destroy "$dir" >/dev/null 2>&1 || true
cleanup() {
    if ((keep)); then
        echo "soak cluster kept running: eval \"\$(scripts/cluster.sh env $dir)\"; stop with scripts/cluster.sh destroy $dir" >&2
    else
        scripts/cluster.sh destroy "$dir" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
scripts/cluster.sh start "$dir" --osds "$osds" --class "$class_so"
eval "$(scripts/cluster.sh env "$dir")"
export RBD_CG_TEST_CLUSTER_DIR=$dir RBD_CG_CLASS_SO=$class_so RBD_CG_BIN=$repo/target/debug/rbd-cg
export RBD_CG_RACE_WORKERS=$workers RBD_CG_RACE_SECONDS=$seconds

echo "soak: $workers clients x ${seconds}s, twice, on $osds OSD(s)" >&2
# One race at a time: each is sized to load the cluster on its own.
cargo test --locked --test races -- --test-threads 1 --nocapture \
    racing_group_create_rename_and_rm_leave_every_group_whole racing_clients_leave_no_unrecorded_member_snapshots
