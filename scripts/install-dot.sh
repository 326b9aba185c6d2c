#!/usr/bin/env bash
# Installs django-oauth-toolkit (the second real provider of the end-to-end tests) into a
# cached virtualenv, from PyPI, with the exact pins of tests/dot/requirements.txt.
#
#   scripts/install-dot.sh           # install when missing, print the venv's python
#   scripts/install-dot.sh --print   # print the venv's python, exit 1 when not installed
#
# Prints one line: the path of the virtualenv's python. The virtualenv lives under
# $LATCHKEY_DOT_CACHE (default /var/cache/latchkey, else ~/.cache/latchkey when that is not
# writable) as dot-venv-<first 16 hex digits of the SHA-256 of requirements.txt>, so a
# changed requirements file gets a new one. Concurrent runs wait for each other (flock).
# Needs python3 (3.10 or newer) with the venv module.
set -euo pipefail
cd "$(dirname "$0")/.."

REQS=tests/dot/requirements.txt
hash=$(sha256sum "$REQS" | cut -c1-16)
cache="${LATCHKEY_DOT_CACHE:-/var/cache/latchkey}"
if ! mkdir -p "$cache" 2>/dev/null || [[ ! -w "$cache" ]]; then
    cache="${XDG_CACHE_HOME:-$HOME/.cache}/latchkey"
    mkdir -p "$cache"
fi
venv="$cache/dot-venv-$hash"
marker="$venv/.latchkey-complete"

if [[ "${1:-}" == "--print" ]]; then
    [[ -f "$marker" ]] || exit 1
    echo "$venv/bin/python"
    exit 0
fi

exec 9>"$cache/dot-venv.lock"
flock -w 600 9
if [[ ! -f "$marker" ]]; then
    python="${LATCHKEY_PYTHON:-python3}"
    # Debian's python3 has no venv/ensurepip without the python3-venv package.
    if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 &&
        [[ "$(id -u)" == 0 ]]; then
        echo "installing python3-venv" >&2
        apt-get install -y -qq python3-venv >&2 ||
            { apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2; }
    fi
    rm -rf "$venv"
    echo "installing django-oauth-toolkit into $venv" >&2
    "$python" -m venv "$venv" >&2
    # Exact pins of every package, no resolver: what is tested is what is listed.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --no-deps -r "$REQS" >&2
    "$venv/bin/python" -m pip check >&2
    "$venv/bin/python" -c 'import oauth2_provider, django, jwcrypto, oauthlib' >&2
    touch "$marker"
fi
echo "$venv/bin/python"
