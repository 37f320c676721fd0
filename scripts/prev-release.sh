#!/usr/bin/env bash
# prev-release.sh - builds the class and the CLI of the previous release (tests/previous-release)
# from this repository's git history, for the upgrade test (tests/upgrade.rs), and prints the
# two paths as shell assignments:
#
#   eval "$(scripts/prev-release.sh)"   # -> RBD_CG_PREV_BIN=... RBD_CG_PREV_CLASS_SO=...
#
# The sources come from `git archive <commit>` into target/prev-release/src-<commit>, built with
# their own Cargo.lock in target/prev-release/target (a separate target directory: the current
# build's artifacts are never overwritten). A finished build is reused.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
read -r version commit < <(grep -v '^#' tests/previous-release | head -n 1)
[[ -n ${commit:-} ]] || { echo "prev-release.sh: no version and commit in tests/previous-release" >&2; exit 1; }
out=$repo/target/prev-release/$version-${commit:0:12}

if [[ ! -x $out/rbd-cg || ! -f $out/libcls_rbd_cg.so ]]; then
    if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
        echo "prev-release.sh: commit $commit (release $version) is not in this clone's history;" \
             "the upgrade test needs it (clone without --depth, or git fetch --unshallow)" >&2
        exit 1
    fi
    src=$repo/target/prev-release/src-${commit:0:12}
    rm -rf -- "$src"
    mkdir -p -- "$src"
    git archive "$commit" | tar -x -C "$src"
    echo "prev-release.sh: building release $version (${commit:0:12}) in $src" >&2
    # Release 0.1.0 had the rbd-cg binary in the client package.
    cargo build --manifest-path "$src/Cargo.toml" --locked --quiet -p cls_rbd_cg -p rbd_cg_client \
        --target-dir "$repo/target/prev-release/target" >&2
    mkdir -p -- "$out"
    cp -- "$repo/target/prev-release/target/debug/rbd-cg" "$out/rbd-cg"
    cp -- "$repo/target/prev-release/target/debug/libcls_rbd_cg.so" "$out/libcls_rbd_cg.so"
    rm -rf -- "$src"
fi
printf 'RBD_CG_PREV_VERSION=%q\nRBD_CG_PREV_BIN=%q\nRBD_CG_PREV_CLASS_SO=%q\n' "$version" "$out/rbd-cg" "$out/libcls_rbd_cg.so"
