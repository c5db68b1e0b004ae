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
spec="."
[ -z "$extras" ] || spec=".[$extras]"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e "$spec"
