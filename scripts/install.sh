#!/usr/bin/env bash
# install.sh - builds the release `rbd-cg` and installs it with its man pages and shell
# completions, all generated from the CLI's own definition (`rbd-cg man`, `rbd-cg
# completions`), so they always describe the binary installed next to them.
#
#   scripts/install.sh [--prefix DIR] [--destdir DIR] [--no-build] [--class-dir DIR]
#
#   --prefix DIR     installation prefix (default /usr/local): DIR/bin/rbd-cg,
#                    DIR/share/man/man1/rbd-cg*.1, and the completions in
#                    DIR/share/bash-completion/completions/rbd-cg,
#                    DIR/share/zsh/site-functions/_rbd-cg, DIR/share/fish/vendor_completions.d/rbd-cg.fish
#   --destdir DIR    stage under DIR (packaging: DIR/PREFIX/...)
#   --no-build       install target/release/rbd-cg as it is
#   --class-dir DIR  also install libcls_rbd_cg.so into this OSD class dir, copy-then-rename
#                    (a running OSD keeps the old file mapped); the OSDs load it when they are
#                    restarted, one at a time (docs/PRODUCTION.md). Only on an OSD host.
#
# Everything is copied with `install`; nothing outside the prefix (or the class dir) is touched.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=/usr/local destdir='' build=1 class_dir=''
while (($#)); do
    case $1 in
        --prefix) prefix=$2; shift ;;
        --destdir) destdir=$2; shift ;;
        --no-build) build=0 ;;
        --class-dir) class_dir=$2; shift ;;
        -h | --help) sed -n '2,/^set -/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//;/^set -/d'; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

cd "$repo"
if ((build)); then
    cargo build --release --locked -p rbd_cg_cli ${class_dir:+-p cls_rbd_cg}
fi
bin=$repo/target/release/rbd-cg
[[ -x $bin ]] || { echo "install.sh: $bin is missing (build it, or drop --no-build)" >&2; exit 1; }

root=$destdir$prefix
install -d "$root/bin" "$root/share/man/man1" "$root/share/bash-completion/completions" \
    "$root/share/zsh/site-functions" "$root/share/fish/vendor_completions.d"
install -m 0755 "$bin" "$root/bin/rbd-cg"

pages=$(mktemp -d)
trap 'rm -rf -- "$pages"' EXIT
"$bin" man --dir "$pages" >/dev/null
install -m 0644 "$pages"/*.1 "$root/share/man/man1/"
"$bin" completions bash >"$pages/rbd-cg.bash"
"$bin" completions zsh >"$pages/_rbd-cg"
"$bin" completions fish >"$pages/rbd-cg.fish"
install -m 0644 "$pages/rbd-cg.bash" "$root/share/bash-completion/completions/rbd-cg"
install -m 0644 "$pages/_rbd-cg" "$root/share/zsh/site-functions/_rbd-cg"
install -m 0644 "$pages/rbd-cg.fish" "$root/share/fish/vendor_completions.d/rbd-cg.fish"
man_pages=("$pages"/*.1)
echo "installed rbd-cg $("$bin" -V | cut -d' ' -f2), ${#man_pages[@]} man pages and bash/zsh/fish completions under $root"

if [[ -n $class_dir ]]; then
    so=$repo/target/release/libcls_rbd_cg.so
    [[ -f $so ]] || { echo "install.sh: $so is missing (build without --no-build)" >&2; exit 1; }
    install -d "$destdir$class_dir"
    install -m 0755 "$so" "$destdir$class_dir/.libcls_rbd_cg.so.new"
    mv -f "$destdir$class_dir/.libcls_rbd_cg.so.new" "$destdir$class_dir/libcls_rbd_cg.so"
    echo "installed libcls_rbd_cg.so into $destdir$class_dir: restart this host's OSDs one at a time to load it"
fi
