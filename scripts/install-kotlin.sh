#!/usr/bin/env bash
# Installs what the Kotlin JVM tests need, reusing a cache:
#   * kotlinc 2.4.20 (npm package kotlin-compiler, the full compiler; its lib/ also ships
#     kotlin-stdlib, kotlin-test and kotlinx-coroutines-core-jvm)
#   * JNA (Debian libjna-java: /usr/share/java/jna.jar)
#   * OkHttp 3 + Okio (Debian libokhttp-java), for the tests of the OkHttp glue
#   * JUnit 5 (Debian junit5), the test framework of the JVM tests
#   * a JDK (java, jar) when missing (Debian default-jdk-headless)
#
#   scripts/install-kotlin.sh           # install when missing, print the paths
#   scripts/install-kotlin.sh --print   # print the paths, exit 1 when not installed
#
# Prints shell assignments (eval-able): KOTLIN_HOME, KOTLINC, KOTLIN_LIB, JNA_JAR.
# Cache: $LATCHKEY_KOTLIN_CACHE, default /var/cache/latchkey/kotlin (about 90 MB).
set -euo pipefail

KOTLIN_VERSION=2.4.20
CACHE="${LATCHKEY_KOTLIN_CACHE:-/var/cache/latchkey/kotlin}"
KOTLIN_HOME="$CACHE/kotlin-compiler-$KOTLIN_VERSION"
MARKER="$KOTLIN_HOME/.latchkey-complete"
JNA_JAR=/usr/share/java/jna.jar
OKHTTP_JAR=/usr/share/java/okhttp.jar
JUNIT_JAR=/usr/share/java/junit-platform-console-standalone.jar

print_paths() {
    echo "KOTLIN_HOME=$KOTLIN_HOME"
    echo "KOTLINC=$KOTLIN_HOME/bin/kotlinc"
    echo "KOTLIN_LIB=$KOTLIN_HOME/lib"
    echo "JNA_JAR=$JNA_JAR"
}

installed() {
    [[ -f "$MARKER" && -f "$JNA_JAR" && -f "$OKHTTP_JAR" && -f "$JUNIT_JAR" ]] && command -v java >/dev/null && command -v jar >/dev/null
}

if [[ "${1:-}" == "--print" ]]; then
    installed || exit 1
    print_paths
    exit 0
fi
if installed; then print_paths; exit 0; fi

SUDO=()
[[ "$(id -u)" == 0 ]] || SUDO=(sudo)
apt_install() {
    # apt-get update only when the plain install fails (empty or stale package lists).
    if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2; then
        "${SUDO[@]}" apt-get update >&2
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
    fi
}

start=$(date +%s)
if ! command -v java >/dev/null || ! command -v jar >/dev/null; then
    apt_install default-jdk-headless
fi
[[ -f "$JNA_JAR" ]] || apt_install libjna-java
[[ -f "$OKHTTP_JAR" ]] || apt_install libokhttp-java
[[ -f "$JUNIT_JAR" ]] || apt_install junit5

if [[ ! -f "$MARKER" ]]; then
    command -v npm >/dev/null || apt_install npm
    "${SUDO[@]}" mkdir -p "$CACHE"
    "${SUDO[@]}" rm -rf "$KOTLIN_HOME" "$KOTLIN_HOME.partial"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    echo "install-kotlin.sh: npm pack kotlin-compiler@$KOTLIN_VERSION" >&2
    (cd "$tmp" && npm pack --silent "kotlin-compiler@$KOTLIN_VERSION" >/dev/null)
    "${SUDO[@]}" mkdir -p "$KOTLIN_HOME.partial"
    "${SUDO[@]}" tar -xzf "$tmp"/kotlin-compiler-"$KOTLIN_VERSION".tgz -C "$KOTLIN_HOME.partial" --strip-components=1
    "${SUDO[@]}" chmod +x "$KOTLIN_HOME.partial"/bin/*
    for jar in kotlin-stdlib.jar kotlin-test.jar kotlinx-coroutines-core-jvm.jar; do
        [[ -f "$KOTLIN_HOME.partial/lib/$jar" ]] || { echo "install-kotlin.sh: $jar missing from kotlin-compiler@$KOTLIN_VERSION" >&2; exit 1; }
    done
    "${SUDO[@]}" mv "$KOTLIN_HOME.partial" "$KOTLIN_HOME"
    "$KOTLIN_HOME/bin/kotlinc" -version 2>&1 | head -n1 | "${SUDO[@]}" tee "$MARKER" >&2
fi
echo "install-kotlin.sh: ready in $(( $(date +%s) - start )) s" >&2
print_paths
