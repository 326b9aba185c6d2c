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

# shellcheck source=scripts/lib/kotlin-classes.sh
source scripts/lib/kotlin-classes.sh
kotlin_classes test
kotlin_classes programs   # the runnable example (and the token benchmark of scripts/bench.sh)
OUT="$KOTLIN_OUT"

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
        -cp "$JNA_JAR:$COROUTINES:$OKHTTP:$KOTLIN_LIB/kotlin-stdlib.jar:$OUT/main:$OUT/programs" \
        dev.latchkey.example.ExampleKt demo "$demo" || status=$?
    rm -rf "$demo"
fi
LATCHKEY_TEST_ISSUER="$ISSUER" LATCHKEY_BROWSER="$TARGET_DIR/debug/latchkey-browser" \
    java -Djna.library.path="$LIB_DIR" \
    -cp "$JNA_JAR:$COROUTINES:$OKHTTP:$JUNIT:$KOTLIN_LIB/kotlin-stdlib.jar:$KOTLIN_LIB/kotlin-test.jar:$OUT/main:$OUT/test" \
    dev.latchkey.LatchkeyJvmTestKt "$@" || status=$?
exit "$status"
