#!/usr/bin/env bash
# Builds and tests the Swift package on Linux: Swift 6.0.3 in a Debian trixie chroot
# (scripts/install-swift.sh), linked against the host debug build of latchkey-ffi, against
# the real test provider (tests/op: node runs here, outside the chroot, on 127.0.0.1; the
# chroot shares the network namespace) with target/debug/latchkey-browser as the headless
# browser (it runs inside the chroot: trixie's glibc is newer than the build host's).
#
#   scripts/test-swift.sh [extra `swift test` arguments, e.g. --filter LatchkeyTests.testX]
#
# Runs in a private mount namespace (unshare --mount): /proc, the repository and the cargo
# target directory are mounted into the chroot at their own paths, and vanish with it.
# Compiler warnings are errors here (LATCHKEY_SWIFT_WARNINGS_AS_ERRORS=1). The output ends
# with XCTest's "Executed N tests, with 0 failures" line; before the tests (when no filter is
# given) the example executable LatchkeyExample runs (app + notification extension).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# Absolute cargo target directory ($CARGO_TARGET_DIR relative to the repository, as cargo
# resolves it from here); portable to macOS (no `realpath -m`).
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$REPO/$TARGET_DIR"
# Canonical paths: they are bind-mounted into the chroot at the same place.
REPO="$(pwd -P)"
TARGET_DIR="$(realpath -m "$TARGET_DIR")"

t0=$(date +%s)
ROOT="$(scripts/install-swift.sh --print 2>/dev/null)" || {
    scripts/install-swift.sh >&2
    ROOT="$(scripts/install-swift.sh --print)"
}
t1=$(date +%s)
LIB_DIR="$(realpath "$(scripts/generate-bindings.sh --language swift | tail -n1)")"
t2=$(date +%s)
echo "test-swift.sh: toolchain $((t1 - t0)) s, bindings $((t2 - t1)) s; swift in $ROOT, library in $LIB_DIR" >&2

cargo build -q -p latchkey-e2e --bin latchkey-browser >&2
BROWSER="$TARGET_DIR/debug/latchkey-browser"
# shellcheck source=scripts/lib/test-provider.sh
source scripts/lib/test-provider.sh
start_test_provider test-swift.sh

# Runs in the chroot (scripts/lib/swift-chroot.sh) as sh -c SCRIPT sh REPO LIB_DIR ISSUER BROWSER ARGS...
# shellcheck disable=SC2016 # expanded by the inner shell
inner='cd "$1/swift" && lib="$2" && issuer="$3" && browser="$4" && shift 4 &&
    export HOME=/root LATCHKEY_FFI_LIB_DIR="$lib" LATCHKEY_SWIFT_WARNINGS_AS_ERRORS=1 &&
    export LATCHKEY_TEST_ISSUER="$issuer" LATCHKEY_BROWSER="$browser" &&
    swift build --build-tests &&
    if [ "$#" -eq 0 ]; then
        demo="$(mktemp -d)" &&
        echo "test-swift.sh: example (app + notification extension, two processes):" &&
        swift run --skip-build LatchkeyExample demo "$demo" && rm -rf "$demo"
    fi &&
    swift test --skip-build --disable-swift-testing "$@"'

# shellcheck source=scripts/lib/swift-chroot.sh
source scripts/lib/swift-chroot.sh
status=0
in_swift_chroot "$ROOT" "$REPO" "$TARGET_DIR" "$inner" "$REPO" "$LIB_DIR" "$ISSUER" "$BROWSER" "$@" \
    || status=$?
exit "$status"
