#!/usr/bin/env bash
# Make a ready virtual environment in .venv with sipmask installed (editable) plus the extras
# named in $1 (e.g. "test"). Installs the Debian/Ubuntu packages a fresh machine lacks:
# python3-venv (PEP 668 forbids system-wide pip), python3-dev and gcc (to build the Cython core).
set -euo pipefail
extras="${1:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

PYTHON="${PYTHON:-python3}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

apt_install() {
    # Only ever called for packages that are missing.
    echo "bootstrap: installing $* with apt-get" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

command -v "$PYTHON" >/dev/null || apt_install python3
"$PYTHON" - <<'PY' || { echo "sipmask needs Python 3.11 or newer" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

need=()
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || need+=("python3-venv")
"$PYTHON" - <<'PY' 2>/dev/null || need+=("python3-dev")
import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)
PY
command -v gcc >/dev/null || need+=("gcc")
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi

# Reinstall only when what the install is made from changed (issue 13: 45 s on every start):
# the packaging files and the Cython core's sources, checked against a stamp in .venv, with
# the extras that install had. Anything else is an editable install: Python edits need none.
stamp=.venv/.sipmask-install
sources_hash="$(cat pyproject.toml setup.py sipmask/_core.pyx sipmask/_*.pxi | sha256sum | cut -d' ' -f1)"
up_to_date() {
    [ -f "$stamp" ] && [ -x .venv/bin/sipmask ] || return 1
    compgen -G "sipmask/_core*.so" >/dev/null || return 1  # the built core is there
    local hash had
    read -r hash had <"$stamp" || true
    [ "$hash" = "$sources_hash" ] || return 1
    local extra
    for extra in ${extras//,/ }; do
        [[ ",${had:-}," == *",$extra,"* ]] || return 1
    done
}
if up_to_date; then
    exit 0
fi
spec="."
[ -z "$extras" ] || spec=".[$extras]"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e "$spec"
echo "$sources_hash ${extras:-}" >"$stamp"
