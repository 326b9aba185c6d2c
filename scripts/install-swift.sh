#!/usr/bin/env bash
# Installs a Swift toolchain for the Linux tests of the Swift package: a Debian trixie chroot
# (debootstrap, minbase) with `swiftlang` (Swift 6.0.3) and `libc6-dev`.
#
#   scripts/install-swift.sh            # build the chroot when missing, print its path
#   scripts/install-swift.sh --print    # print the path, exit 1 when not installed
#
# Cache: $LATCHKEY_SWIFT_ROOT, default /var/cache/latchkey/swift-root (about 3.2 GB).
# A marker file is written last: a half-built root (interrupted run) is removed and redone.
# Mirror: $LATCHKEY_DEBIAN_MIRROR, else the Debian mirror of this machine's apt sources,
# else http://deb.debian.org/debian. Needs root (or sudo) for debootstrap and chroot.
set -euo pipefail

ROOT="${LATCHKEY_SWIFT_ROOT:-/var/cache/latchkey/swift-root}"
MARKER="$ROOT/.latchkey-swift-complete"
SUITE=trixie

if [[ "${1:-}" == "--print" ]]; then
    [[ -f "$MARKER" ]] && { echo "$ROOT"; exit 0; }
    exit 1
fi

# The marker alone decides (written last, after `swift --version` ran in the chroot);
# $ROOT/usr/bin/swift is an absolute symlink, which does not resolve from outside the chroot.
if [[ -f "$MARKER" ]]; then
    echo "swift chroot: $ROOT ($(head -n1 "$MARKER"))"
    exit 0
fi

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "install-swift.sh: needs root (or sudo) for debootstrap/chroot" >&2; exit 1; }
    SUDO=(sudo)
fi

apt_install() {
    # apt-get update only when the plain install fails (empty or stale package lists).
    if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; then
        "${SUDO[@]}" apt-get update
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
    fi
}

debian_mirror() {
    if [[ -n "${LATCHKEY_DEBIAN_MIRROR:-}" ]]; then echo "$LATCHKEY_DEBIAN_MIRROR"; return; fi
    local uri
    # deb822 sources (URIs: ...) and one-line sources (deb URI suite ...): the first URI whose
    # path ends in /debian (not debian-security, not third-party repositories).
    uri="$( { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n'
              cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                | sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p'
            } | grep -E '^https?://[^[:space:]]+/debian/?$' | head -n1 || true)"
    echo "${uri:-http://deb.debian.org/debian}"
}

# A root that is still mounted somewhere must not be deleted.
if grep -qF " $ROOT/" /proc/mounts; then
    echo "install-swift.sh: something is mounted under $ROOT; unmount it first" >&2
    exit 1
fi

command -v debootstrap >/dev/null || apt_install debootstrap
command -v unshare >/dev/null || apt_install util-linux

MIRROR="$(debian_mirror)"
start=$(date +%s)
if [[ -e "$ROOT" ]]; then
    echo "install-swift.sh: removing incomplete chroot $ROOT"
    "${SUDO[@]}" rm -rf --one-file-system "$ROOT"
fi
"${SUDO[@]}" mkdir -p "$(dirname "$ROOT")"
echo "install-swift.sh: debootstrap $SUITE from $MIRROR into $ROOT"
"${SUDO[@]}" debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR"
"${SUDO[@]}" cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
# A private mount namespace: /proc is unmounted when the command ends, whatever happens.
"${SUDO[@]}" unshare --mount sh -c '
    mount -t proc proc "$1/proc" &&
    chroot "$1" sh -c "export DEBIAN_FRONTEND=noninteractive
        apt-get update &&
        apt-get install -y -o Dpkg::Use-Pty=0 --no-install-recommends swiftlang libc6-dev &&
        apt-get clean && rm -rf /var/lib/apt/lists/*"' sh "$ROOT"
version="$("${SUDO[@]}" unshare --mount sh -c 'mount -t proc proc "$1/proc" && chroot "$1" swift --version 2>&1' sh "$ROOT" | head -n1)"
printf '%s\nmirror %s, built %s\n' "$version" "$MIRROR" "$(date -u +%FT%TZ)" | "${SUDO[@]}" tee "$MARKER" >/dev/null
echo "swift chroot: $ROOT ($version), $(( $(date +%s) - start )) s"
