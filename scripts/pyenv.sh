#!/usr/bin/env bash
# pyenv.sh - the Python environment the binding and the Cinder driver are built and tested in.
#
#   scripts/pyenv.sh            create/refresh target/pyenv, print its path
#
# A venv on Debian's /usr/bin/python3 with the system site-packages, so Debian's python3-rados and
# python3-rbd (which pip cannot install) stay importable next to cinder from PyPI. Pinned versions;
# idempotent (a stamp file records what was installed). Facts behind the extra pins
# (../shared/cinder-facts.md): Debian's pyOpenSSL 23 clashes with the cryptography pip brings
# (`import cinder` fails on GEN_EMAIL) -> upgrade it; cinder's fake-object test helpers need `fixtures`.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${RBD_CG_PYENV:-$repo/target/pyenv}
requirements=(
    "cinder==29.0.0"
    "pyOpenSSL>=24"
    "fixtures"
    "pytest>=7"
    "maturin>=1.5,<2"
)
stamp="$venv/.rbd-cg-requirements"
want=$(printf '%s\n' "${requirements[@]}")

if [[ ! -x $venv/bin/python ]]; then
    /usr/bin/python3 -m venv --system-site-packages "$venv" >&2
fi
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "pyenv.sh: installing ${requirements[*]} into $venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}" >&2
    printf '%s\n' "$want" >"$stamp"
fi
echo "$venv"
