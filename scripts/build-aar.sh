#!/usr/bin/env bash
# Builds the Android library (AAR) of Latchkey.
#
#   scripts/build-aar.sh [--abis "arm64-v8a armeabi-v7a x86_64 x86"] [--out FILE]
#       Needs the Android NDK ($ANDROID_NDK_HOME or $ANDROID_NDK_ROOT), cargo-ndk
#       (cargo install cargo-ndk), the Android SDK ($ANDROID_HOME) and Gradle (kotlin/gradlew
#       or `gradle` on PATH). Builds liblatchkey_ffi.so per ABI with the release-mobile profile
#       into kotlin/src/main/jniLibs/<abi>/, generates the Kotlin bindings, runs
#       `gradle assembleRelease` in kotlin/ and checks the AAR's layout.
#
#   scripts/build-aar.sh --host-layout-check [--classes DIR] [--lib-dir DIR] [--out FILE]
#       Works anywhere (used by scripts/test-kotlin.sh): packages the host library (e.g.
#       linux x86_64) into an AAR-shaped zip — classes.jar (generated Kotlin + glue compiled
#       with kotlinc, or the classes in DIR), jni/<host abi>/liblatchkey_ffi.so,
#       AndroidManifest.xml, proguard.txt, R.txt — and verifies the layout with `unzip -l`.
#       It checks packaging only: the classes are JVM classes and the library is not Android's.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# Absolute cargo target directory ($CARGO_TARGET_DIR relative to the repository, as cargo
# resolves it from here); portable to macOS (no `realpath -m`).
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$REPO/$TARGET_DIR"

mode=android
abis="arm64-v8a armeabi-v7a x86_64 x86"
classes=""
lib_dir=""
out=""
min_sdk=24
while [[ $# -gt 0 ]]; do
    case "$1" in
        --host-layout-check) mode=host ;;
        --abis) abis="$2"; shift ;;
        --classes) classes="$2"; shift ;;
        --lib-dir) lib_dir="$2"; shift ;;
        --out) out="$2"; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "build-aar.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "build-aar.sh: $*" >&2; exit 1; }

# check_layout AAR ABI...: the entries an AAR consumer (AGP) relies on.
check_layout() {
    local aar="$1"; shift
    local listing entry missing=0
    listing="$(unzip -l "$aar")"
    echo "$listing"
    for entry in AndroidManifest.xml classes.jar proguard.txt R.txt; do
        grep -qE "[[:space:]]$entry\$" <<<"$listing" || { echo "missing: $entry" >&2; missing=1; }
    done
    for abi in "$@"; do
        grep -qE "[[:space:]]jni/$abi/liblatchkey_ffi\.so\$" <<<"$listing" \
            || { echo "missing: jni/$abi/liblatchkey_ffi.so" >&2; missing=1; }
    done
    # The generated bindings and the glue must be in classes.jar.
    local jar_listing
    jar_listing="$(unzip -p "$aar" classes.jar > "$tmp/check-classes.jar" && unzip -l "$tmp/check-classes.jar")"
    for class in dev/latchkey/Latchkey.class dev/latchkey/Latchkey_ffiKt.class dev/latchkey/UniffiLib.class; do
        grep -qF "$class" <<<"$jar_listing" || { echo "missing in classes.jar: $class" >&2; missing=1; }
    done
    [[ "$missing" == 0 ]] || die "AAR layout check failed: $aar"
    echo "build-aar.sh: AAR layout OK: $aar ($(du -h "$aar" | cut -f1))"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if [[ "$mode" == host ]]; then
    case "$(uname -m)" in
        x86_64) abi=x86_64 ;;
        aarch64|arm64) abi=arm64-v8a ;;
        i?86) abi=x86 ;;
        *) die "no Android ABI for host $(uname -m)" ;;
    esac
    if [[ -z "$lib_dir" ]]; then
        lib_dir="$(scripts/generate-bindings.sh --language kotlin | tail -n1)"
    fi
    [[ -f "$lib_dir/liblatchkey_ffi.so" ]] || die "no liblatchkey_ffi.so in $lib_dir"
    if [[ -z "$classes" ]]; then
        eval "$(scripts/install-kotlin.sh --print 2>/dev/null || scripts/install-kotlin.sh)"
        classes="$tmp/classes"
        # shellcheck disable=SC2046 # the source paths have no spaces
        "$KOTLINC" -Werror -jvm-target 17 -cp "$JNA_JAR:$KOTLIN_LIB/kotlinx-coroutines-core-jvm.jar" \
            -d "$classes" $(find kotlin/src/generated/kotlin kotlin/src/main/kotlin -name '*.kt' | sort)
    fi
    [[ -d "$classes/dev/latchkey" ]] || die "no compiled classes in $classes"

    stage="$tmp/aar"
    mkdir -p "$stage/jni/$abi"
    jar --create --file "$stage/classes.jar" -C "$classes" .
    cp "$lib_dir/liblatchkey_ffi.so" "$stage/jni/$abi/"
    # AGP writes the namespace as the package attribute of the AAR's manifest.
    sed 's|<manifest |<manifest package="dev.latchkey" |' kotlin/src/main/AndroidManifest.xml >"$stage/AndroidManifest.xml"
    cp kotlin/consumer-rules.pro "$stage/proguard.txt"
    : >"$stage/R.txt"
    out="${out:-$TARGET_DIR/aar/latchkey-host-$abi.aar}"
    mkdir -p "$(dirname "$out")"
    rm -f "$out"
    (cd "$stage" && zip -q -1 -r "$out" AndroidManifest.xml classes.jar proguard.txt R.txt jni)
    check_layout "$out" "$abi"
    exit 0
fi

# --- The real AAR: Android NDK + cargo-ndk + Gradle --------------------------------------
ndk="${ANDROID_NDK_HOME:-${ANDROID_NDK_ROOT:-}}"
[[ -n "$ndk" && -d "$ndk" ]] \
    || die "the Android NDK is missing: set ANDROID_NDK_HOME (use --host-layout-check to check the packaging without it)"
cargo ndk --version >/dev/null 2>&1 || die "cargo-ndk is missing: cargo install cargo-ndk"
[[ -n "${ANDROID_HOME:-${ANDROID_SDK_ROOT:-}}" ]] || die "the Android SDK is missing: set ANDROID_HOME"
if [[ -x kotlin/gradlew ]]; then gradle=(./gradlew); elif command -v gradle >/dev/null; then gradle=(gradle); else
    die "Gradle is missing: add a wrapper (kotlin/gradlew) or put gradle on PATH"
fi

# (bash 3.2 on macOS: no associative arrays)
triple_for() {
    case "$1" in
        arm64-v8a) echo aarch64-linux-android ;;
        armeabi-v7a) echo armv7-linux-androideabi ;;
        x86_64) echo x86_64-linux-android ;;
        x86) echo i686-linux-android ;;
        *) die "unknown ABI $1 (arm64-v8a, armeabi-v7a, x86_64, x86)" ;;
    esac
}
ndk_args=()
for abi in $abis; do
    triple_for "$abi" >/dev/null
    rustup target add "$(triple_for "$abi")"
    ndk_args+=(-t "$abi")
done

# The shipped library: cdylib only (fat LTO, opt-level z, stripped: [profile.release-mobile]).
cargo ndk "${ndk_args[@]}" --platform "$min_sdk" build -p latchkey-ffi --lib --profile release-mobile
rm -rf kotlin/src/main/jniLibs
for abi in $abis; do
    mkdir -p "kotlin/src/main/jniLibs/$abi"
    cp "$TARGET_DIR/$(triple_for "$abi")/release-mobile/liblatchkey_ffi.so" "kotlin/src/main/jniLibs/$abi/"
done

scripts/generate-bindings.sh --language kotlin >/dev/null
(cd kotlin && "${gradle[@]}" --no-daemon assembleRelease)
built="$(ls kotlin/build/outputs/aar/*-release.aar | head -n1)"
out="${out:-$TARGET_DIR/aar/latchkey-release.aar}"
mkdir -p "$(dirname "$out")"
cp "$built" "$out"
# shellcheck disable=SC2086
check_layout "$out" $abis
