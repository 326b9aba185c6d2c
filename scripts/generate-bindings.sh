#!/usr/bin/env bash
# Builds latchkey-ffi for the host and generates the Swift and Kotlin bindings from the
# library (uniffi library mode) with the pinned bindgen of the workspace.
#
#   scripts/generate-bindings.sh [--release | --profile NAME] [--language swift|kotlin|all]
#                                [--lib PATH]   # generate from an already built library
#
# Outputs (git-ignored, rewritten only when their content changes):
#   swift/Sources/LatchkeyFFI/LatchkeyFFI.h, swift/Sources/LatchkeyFFI/module.modulemap
#   swift/Sources/LatchkeyGenerated/LatchkeyGenerated.swift
#   kotlin/src/generated/kotlin/dev/latchkey/latchkey_ffi.kt
# The last line printed is the directory holding the host library (for -L / jna.library.path).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# Absolute cargo target directory ($CARGO_TARGET_DIR relative to the repository, as cargo
# resolves it from here); portable to macOS (no `realpath -m`).
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$REPO/$TARGET_DIR"

profile=dev
language=all
lib=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --release) profile=release ;;
        --profile) profile="$2"; shift ;;
        --language) language="$2"; shift ;;
        --lib) lib="$2"; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "generate-bindings.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
case "$language" in swift|kotlin|all) ;; *) echo "generate-bindings.sh: --language swift|kotlin|all" >&2; exit 2 ;; esac

profile_dir="$profile"
[[ "$profile" == dev ]] && profile_dir=debug
if [[ -z "$lib" ]]; then
    case "$(uname -s)" in Darwin) ext=dylib ;; *) ext=so ;; esac
    # Library and bindgen in one cargo invocation: one feature resolution, so the core crate
    # is compiled once for both (the bindgen binary gets all the package's dependencies).
    cargo build -p latchkey-ffi --features bindgen --profile "$profile" >&2
    lib="$TARGET_DIR/$profile_dir/liblatchkey_ffi.$ext"
else
    # The bindgen does not link the library, it reads the uniffi metadata from it.
    profile_dir=debug
    cargo build -q -p latchkey-ffi --features bindgen --bin uniffi-bindgen >&2
fi
[[ -f "$lib" ]] || { echo "generate-bindings.sh: library not found: $lib" >&2; exit 1; }
bindgen="$TARGET_DIR/$profile_dir/uniffi-bindgen"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Copies $1 to $2 unless $2 already has the same content (keeps SwiftPM/Gradle builds incremental).
install_if_changed() {
    mkdir -p "$(dirname "$2")"
    if ! cmp -s "$1" "$2"; then cp "$1" "$2"; echo "generated $2" >&2; fi
}

if [[ "$language" == swift || "$language" == all ]]; then
    "$bindgen" generate "$lib" --language swift --out-dir "$tmp/swift" --no-format >&2
    install_if_changed "$tmp/swift/LatchkeyFFI.h" swift/Sources/LatchkeyFFI/LatchkeyFFI.h
    install_if_changed "$tmp/swift/LatchkeyFFI.modulemap" swift/Sources/LatchkeyFFI/module.modulemap
    install_if_changed "$tmp/swift/LatchkeyGenerated.swift" swift/Sources/LatchkeyGenerated/LatchkeyGenerated.swift
fi

if [[ "$language" == kotlin || "$language" == all ]]; then
    "$bindgen" generate "$lib" --language kotlin --out-dir "$tmp/kotlin" --no-format >&2
    out=kotlin/src/generated/kotlin
    # Remove generated files that no longer exist (renamed namespace or package).
    if [[ -d "$out" ]]; then
        (cd "$out" && find . -type f) | while read -r f; do
            [[ -f "$tmp/kotlin/$f" ]] || { rm -f "$out/$f"; echo "removed $out/$f" >&2; }
        done
    fi
    (cd "$tmp/kotlin" && find . -type f) | while read -r f; do
        install_if_changed "$tmp/kotlin/$f" "$out/${f#./}"
    done
fi

dirname "$lib"
