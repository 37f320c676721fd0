#!/usr/bin/env bash
# demo.sh - the main job: build the class and the CLI, start a local throwaway Ceph cluster
# whose OSD loads libcls_rbd_cg.so, and walk through the group lifecycle with `rbd-cg`.
# The cluster keeps running afterwards so you can go on using it; the script prints how.
#
# Environment: RBD_CG_DEMO_DIR (cluster directory, default target/demo-cluster).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
dir=${RBD_CG_DEMO_DIR:-$repo/target/demo-cluster}

scripts/deps.sh
echo "== building (release)" >&2
cargo build --release --locked -p cls_rbd_cg -p rbd_cg_cli
scripts/cluster.sh start "$dir" --class "$repo/target/release/libcls_rbd_cg.so"
eval "$(scripts/cluster.sh env "$dir")"
rbd_cg=$repo/target/release/rbd-cg

run() { printf '\n$ rbd-cg %s\n' "$*"; "$rbd_cg" "$@"; }

"$rbd_cg" rm --no-progress demo-db-copy >/dev/null 2>&1 || true
for image in demo-db-copy-demo-disk-1 demo-db-copy-demo-disk-2; do rbd rm --no-progress "rbd/$image" >/dev/null 2>&1 || true; done
"$rbd_cg" rm --no-progress demo-db >/dev/null 2>&1 || true
"$rbd_cg" rm demo-web >/dev/null 2>&1 || true
"$rbd_cg" rm demo-archive >/dev/null 2>&1 || true
run create demo-db
run create demo-web
run ls
run info demo-db
run rename demo-web demo-archive
run ls --format json
printf '\n$ rados -p rbd listomapkeys cg_directory   # the directory, as stock tools see it\n'
rados -p rbd listomapkeys cg_directory
run rm demo-archive

printf '\n# members and a crash-consistent group snapshot\n'
for image in demo-disk-1 demo-disk-2; do
    rbd rm "rbd/$image" >/dev/null 2>&1 || true
    printf '$ rbd create --size 64M rbd/%s\n' "$image"
    rbd create --size 64M "rbd/$image"
    run image add demo-db "rbd/$image"
done
run image ls demo-db
run snap create --no-progress demo-db@before-upgrade
run snap ls demo-db
run snap info demo-db@before-upgrade
printf '\n$ rbd snap ls --all rbd/demo-disk-1   # the member snapshot, in the group namespace like stock group snapshots\n'
rbd snap ls --all rbd/demo-disk-1
printf '$ rbd snap ls rbd/demo-disk-1   # hidden from plain rbd snap ls (and rbd snap rm/purge cannot touch it)\n'
rbd snap ls rbd/demo-disk-1
run snap ls demo-db --format json --pretty-format   # stock rbd group's keys first, ours after
run snap rollback --no-progress demo-db@before-upgrade

printf '\n# a new group from the snapshot: one RBD clone per member\n'
run clone demo-db@before-upgrade demo-db-copy
run image ls demo-db-copy
printf '\n$ rbd ls -l rbd   # the clones and their parents, as stock rbd sees them\n'
rbd ls -l rbd
run rm --no-progress demo-db-copy
for image in demo-db-copy-demo-disk-1 demo-db-copy-demo-disk-2; do
    printf '$ rbd rm rbd/%s\n' "$image"
    rbd rm --no-progress "rbd/$image"
done
printf '\n# rm removes the snapshots and the members, then the group, as `rbd group rm`\n'
run rm --no-progress demo-db
run ls --format json

cat <<TXT

The cluster is still running. To keep using it:
    eval "\$(scripts/cluster.sh env $dir)"
    $rbd_cg --help
    $rbd_cg create rbd/mygroup && $rbd_cg ls
Stop it with:  scripts/cluster.sh stop $dir   (or destroy, to delete it)
TXT
