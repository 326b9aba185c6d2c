#!/usr/bin/env bash
# Tests the Kotlin API on the JVM: the generated bindings + the glue of kotlin/src/main,
# compiled with kotlinc (warnings are errors), run with JNA against the host debug build of
# latchkey-ffi, against the real test provider (tests/op, started here on 127.0.0.1 and
# stopped on exit) with target/debug/latchkey-browser as the headless browser. Also checks the AAR layout with the host library
# (scripts/build-aar.sh --host-layout-check) unless --no-aar is given.
#
#   scripts/test-kotlin.sh [--no-aar] [test name filters...]
#
# Without filters the runnable example (kotlin/src/jvmExample: app + notification
# extension, two JVMs) runs first; the output ends with the tests' "N passed, M failed".
# Exit code 1 on failure.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

aar=1
if [[ "${1:-}" == "--no-aar" ]]; then aar=0; shift; fi

t0=$(date +%s)
paths="$(scripts/install-kotlin.sh --print 2>/dev/null)" || paths="$(scripts/install-kotlin.sh)"
eval "$paths"   # KOTLIN_HOME KOTLINC KOTLIN_LIB JNA_JAR
t1=$(date +%s)
LIB_DIR="$(scripts/generate-bindings.sh --language kotlin | tail -n1)"
t2=$(date +%s)
echo "test-kotlin.sh: toolchain $((t1 - t0)) s, bindings $((t2 - t1)) s; library in $LIB_DIR" >&2

OUT="$REPO/kotlin/build/jvm"
COROUTINES="$KOTLIN_LIB/kotlinx-coroutines-core-jvm.jar"
# OkHttp (Debian libokhttp-java, installed by install-kotlin.sh) for the Interceptor glue.
OKHTTP="/usr/share/java/okhttp.jar:/usr/share/java/okio.jar"
# JUnit 5 (Debian junit5): the Jupiter API, engine and the Platform launcher in one jar.
JUNIT=/usr/share/java/junit-platform-console-standalone.jar
mkdir -p "$OUT"

# kotlinc_cached NAME CLASSPATH KEY SOURCES...: compiles into $OUT/NAME unless the same
# compiler, classpath, key and sources were already compiled there (kotlinc: ~25 s on 2 cores).
kotlinc_cached() {
    local name="$1" cp="$2" key="$3"; shift 3
    local stamp
    stamp="$( { echo "$KOTLINC $cp $key $*"; cat "$@"; } | sha256sum | cut -d' ' -f1)"
    if [[ -f "$OUT/$name.stamp" && "$(cat "$OUT/$name.stamp")" == "$stamp" ]]; then
        echo "test-kotlin.sh: $name classes up to date" >&2
        return
    fi
    rm -rf "${OUT:?}/$name" "$OUT/$name.stamp"
    local start
    start=$(date +%s)
    "$KOTLINC" -Werror -jvm-target 17 -cp "$cp" -d "$OUT/$name" "$@" >&2
    echo "$stamp" >"$OUT/$name.stamp"
    echo "test-kotlin.sh: compiled $name in $(( $(date +%s) - start )) s" >&2
}

mapfile -t main_sources < <(find kotlin/src/generated/kotlin kotlin/src/main/kotlin -name '*.kt' | sort)
mapfile -t test_sources < <(find kotlin/src/jvmTest/kotlin -name '*.kt' | sort)
kotlinc_cached main "$JNA_JAR:$COROUTINES:$OKHTTP" "" "${main_sources[@]}"
kotlinc_cached test "$JNA_JAR:$COROUTINES:$OKHTTP:$JUNIT:$KOTLIN_LIB/kotlin-test.jar:$OUT/main" \
    "$(cat "$OUT/main.stamp")" "${test_sources[@]}"
mapfile -t example_sources < <(find kotlin/src/jvmExample/kotlin -name '*.kt' | sort)
kotlinc_cached example "$JNA_JAR:$COROUTINES:$OUT/main" "$(cat "$OUT/main.stamp")" "${example_sources[@]}"

if [[ "$aar" == 1 ]]; then
    scripts/build-aar.sh --host-layout-check --classes "$OUT/main" --lib-dir "$LIB_DIR" >&2
fi

# The test provider and the headless browser.
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$REPO/$TARGET_DIR"
cargo build -q -p latchkey-e2e --bin latchkey-browser >&2
# shellcheck source=scripts/lib/test-provider.sh
source scripts/lib/test-provider.sh
start_test_provider test-kotlin.sh

status=0
# The runnable example (app + notification extension, two JVMs), when no filter is given.
if [[ "$#" == 0 ]]; then
    demo="$(mktemp -d)"
    echo "test-kotlin.sh: example (app + notification extension, two processes):"
    LATCHKEY_TEST_ISSUER="$ISSUER" LATCHKEY_BROWSER="$TARGET_DIR/debug/latchkey-browser" \
        java -Djna.library.path="$LIB_DIR" \
        -cp "$JNA_JAR:$COROUTINES:$OKHTTP:$KOTLIN_LIB/kotlin-stdlib.jar:$OUT/main:$OUT/example" \
        dev.latchkey.example.ExampleKt demo "$demo" || status=$?
    rm -rf "$demo"
fi
LATCHKEY_TEST_ISSUER="$ISSUER" LATCHKEY_BROWSER="$TARGET_DIR/debug/latchkey-browser" \
    java -Djna.library.path="$LIB_DIR" \
    -cp "$JNA_JAR:$COROUTINES:$OKHTTP:$JUNIT:$KOTLIN_LIB/kotlin-stdlib.jar:$KOTLIN_LIB/kotlin-test.jar:$OUT/main:$OUT/test" \
    dev.latchkey.LatchkeyJvmTestKt "$@" || status=$?
exit "$status"
