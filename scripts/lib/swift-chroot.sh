# shellcheck shell=bash
# Runs a shell script in the Swift chroot (scripts/install-swift.sh), for scripts/test-swift.sh
# and scripts/bench.sh.
#
#   in_swift_chroot ROOT REPO TARGET_DIR SCRIPT [ARGS...]
#
# ROOT is the chroot, REPO and TARGET_DIR canonical absolute paths (the repository and the
# cargo target directory). In a private mount namespace (unshare --mount): /proc, the host CA
# roots (read-only), the repository and the target directory are mounted into the chroot at
# their own paths, and vanish with it. SCRIPT runs as `sh -c SCRIPT sh ARGS...` inside (sudo
# resets the environment: values travel as arguments).
in_swift_chroot() {
    local root="$1" repo="$2" target="$3" script="$4"
    shift 4
    local sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    # shellcheck disable=SC2016 # expanded by the inner shell
    "${sudo[@]}" unshare --mount sh -ec '
        root="$1" repo="$2" target="$3"; shift 3
        mount -t proc proc "$root/proc"
        # rustls-platform-verifier fails without any system roots even for plain-http
        # loopback requests, and the chroot has no ca-certificates.
        if [ -d /etc/ssl/certs ]; then
            mkdir -p "$root/etc/ssl/certs"
            mount --bind -o ro /etc/ssl/certs "$root/etc/ssl/certs"
        fi
        mkdir -p "$root$repo"
        mount --bind "$repo" "$root$repo"
        case "$target/" in
            "$repo"/*) ;;
            *) mkdir -p "$root$target"; mount --bind "$target" "$root$target" ;;
        esac
        exec chroot "$root" sh -c "$@"
    ' sh "$root" "$repo" "$target" "$script" sh "$@"
}
