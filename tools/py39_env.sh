#!/usr/bin/env bash
# Creates .venv39: a real Python 3.9 (the version 3D Slicer 5.8 ships) with startnet installed
# editable and its dependencies at versions that support 3.9 (tools/py39-constraints.txt).
#
# Finds python3.9 in this order: $PYTHON39; pyenv's installed 3.9.x (newest, without needing the
# shim's PYENV_VERSION); python3.9 on PATH (run with PYENV_VERSION=3.9 so a pyenv shim resolves);
# /usr/bin, /usr/local/bin. No 3.9 at all -> exit 2 with a message (never a silent skip).
# Reinstalls only when pyproject.toml, the constraints or the interpreter changed (stamp file).
#
# Usage: tools/py39_env.sh            # prints nothing on a stamped re-run
#        tools/py39_env.sh --which    # prints the python3.9 interpreter found and exits
set -euo pipefail
cd "$(dirname "$0")/.."
VENV39=${VENV39:-.venv39}
CONSTRAINTS=tools/py39-constraints.txt
STAMP=$VENV39/.startnet-py39-installed

is_py39() {
    [ -n "$1" ] && [ -x "$1" ] && \
        PYENV_VERSION=${PYENV_VERSION:-3.9} "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 9))' \
        >/dev/null 2>&1
}

find_python39() {
    local candidates=()
    [ -n "${PYTHON39:-}" ] && candidates+=("$PYTHON39")
    if command -v pyenv >/dev/null 2>&1; then
        local root
        root=$(pyenv root 2>/dev/null || true)
        if [ -n "$root" ] && [ -d "$root/versions" ]; then
            while IFS= read -r v; do
                candidates+=("$root/versions/$v/bin/python3.9")
            done < <(ls "$root/versions" | grep -E '^3\.9\.[0-9]+$' | sort -t. -k3,3nr)
        fi
    fi
    local on_path
    on_path=$(command -v python3.9 2>/dev/null || true)
    [ -n "$on_path" ] && candidates+=("$on_path")
    candidates+=(/usr/bin/python3.9 /usr/local/bin/python3.9)
    local c
    for c in "${candidates[@]}"; do
        if is_py39 "$c"; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

if ! PY39=$(find_python39); then
    echo "ERROR: no Python 3.9 interpreter found (3D Slicer 5.8 runs Python 3.9, so the startnet" >&2
    echo "       package must be checked on it). Install one (e.g. 'pyenv install 3.9', or the" >&2
    echo "       distribution's python3.9 with venv) or set PYTHON39=/path/to/python3.9." >&2
    exit 2
fi
if [ "${1:-}" = "--which" ]; then
    echo "$PY39"
    exit 0
fi

export PYENV_VERSION=${PYENV_VERSION:-3.9}
# One builder at a time (several make runs may share this working tree).
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/startnet-py39-env-$(printf '%s' "$PWD/$VENV39" | sha256sum | cut -c1-16).lock"
    flock 9
fi
want="$(PYENV_VERSION=$PYENV_VERSION "$PY39" -c 'import sys; print(sys.version.split()[0])') $PY39 $PWD
$(sha256sum pyproject.toml "$CONSTRAINTS" tools/py39_env.sh | cut -d' ' -f1 | tr '\n' ' ')"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && is_py39 "$VENV39/bin/python"; then
    exit 0
fi

echo "py39-env: building $VENV39 with $PY39"
start=$(date +%s)
rm -rf "$VENV39"
"$PY39" -m venv "$VENV39"
# The pip bundled with 3.9.18 (23.0) resolves and builds PEP 660 editable installs; not upgraded
# so that the environment does not drift with each pip release.
"$VENV39/bin/python" -m pip install -qq --disable-pip-version-check \
    -c "$CONSTRAINTS" -e '.[postgres]'
printf '%s' "$want" > "$STAMP"
echo "py39-env: $VENV39 ready in $(( $(date +%s) - start )) s:" \
    "$("$VENV39/bin/python" -m pip list --disable-pip-version-check --format=freeze 2>/dev/null \
       | grep -iE '^(numpy|scipy|simpleitk|pydicom|numba|sqlalchemy|alembic|matplotlib|highdicom|psycopg)==' \
       | tr '\n' ' ')"
