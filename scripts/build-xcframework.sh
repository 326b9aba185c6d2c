#!/usr/bin/env bash
# Builds swift/LatchkeyFFI.xcframework: the Rust library as static libraries for iOS devices,
# the iOS simulator (arm64 + x86_64) and macOS (arm64 + x86_64), with the generated C header
# and modulemap. swift/Package.swift uses it as a binary target when it exists, so Xcode / iOS
# apps depend on the Swift package without unsafe linker flags.
#
#   scripts/build-xcframework.sh [--platforms "ios ios-sim macos"] [--zip]
#
# Needs macOS with Xcode (xcodebuild, lipo) and rustup. --zip also writes
# $CARGO_TARGET_DIR/xcframework/LatchkeyFFI.xcframework.zip and prints its SwiftPM checksum
# (for a remote `.binaryTarget(url:checksum:)`).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# Absolute cargo target directory ($CARGO_TARGET_DIR relative to the repository, as cargo
# resolves it from here); portable to macOS (no `realpath -m`).
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$REPO/$TARGET_DIR"

platforms="ios ios-sim macos"
zip=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --platforms) platforms="$2"; shift ;;
        --zip) zip=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "build-xcframework.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "build-xcframework.sh: $*" >&2; exit 1; }
[[ "$(uname -s)" == Darwin ]] && command -v xcodebuild >/dev/null && command -v lipo >/dev/null \
    || die "Xcode is required (xcodebuild and lipo on macOS); on Linux the Swift package is tested with scripts/test-swift.sh"
command -v rustup >/dev/null || die "rustup is required to add the Apple targets"

# (bash 3.2 on macOS: no associative arrays)
targets_for() {
    case "$1" in
        ios) echo "aarch64-apple-ios" ;;
        ios-sim) echo "aarch64-apple-ios-sim x86_64-apple-ios" ;;
        macos) echo "aarch64-apple-darwin x86_64-apple-darwin" ;;
        *) die "unknown platform $1 (ios, ios-sim, macos)" ;;
    esac
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Header + modulemap of the C module LatchkeyFFI. They sit in a subdirectory named after the
# module: Xcode copies every XCFramework's Headers/ into one include directory, where two
# top-level module.modulemap files would collide; clang finds <dir>/LatchkeyFFI/module.modulemap.
scripts/generate-bindings.sh --language swift >/dev/null
headers="$tmp/headers"
mkdir -p "$headers/LatchkeyFFI"
cp swift/Sources/LatchkeyFFI/LatchkeyFFI.h swift/Sources/LatchkeyFFI/module.modulemap "$headers/LatchkeyFFI/"

xc_args=()
for platform in $platforms; do
    platform_targets="$(targets_for "$platform")"
    libs=()
    for target in $platform_targets; do
        rustup target add "$target"
        # staticlib only: fat LTO applies, and no dylib is built for nothing.
        cargo rustc -p latchkey-ffi --lib --profile release-mobile --target "$target" --crate-type staticlib
        libs+=("$TARGET_DIR/$target/release-mobile/liblatchkey_ffi.a")
    done
    mkdir -p "$tmp/$platform"
    lipo -create "${libs[@]}" -output "$tmp/$platform/liblatchkey_ffi.a"
    xc_args+=(-library "$tmp/$platform/liblatchkey_ffi.a" -headers "$headers")
done

out=swift/LatchkeyFFI.xcframework
rm -rf "$out"
xcodebuild -create-xcframework "${xc_args[@]}" -output "$out"
echo "build-xcframework.sh: wrote $out"

if [[ "$zip" == 1 ]]; then
    mkdir -p "$TARGET_DIR/xcframework"
    archive="$TARGET_DIR/xcframework/LatchkeyFFI.xcframework.zip"
    rm -f "$archive"
    (cd swift && zip -q -r -y "$archive" LatchkeyFFI.xcframework)
    echo "build-xcframework.sh: wrote $archive, checksum $(swift package compute-checksum "$archive")"
fi
