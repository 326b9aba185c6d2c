# shellcheck shell=bash
# The Kotlin JVM classes, compiled with kotlinc (warnings are errors) and cached, for
# scripts/test-kotlin.sh and scripts/bench.sh (the same units, so they share the cache).
# Source it from the repository root after `eval "$(scripts/install-kotlin.sh)"` (KOTLINC,
# KOTLIN_LIB, JNA_JAR) and scripts/generate-bindings.sh (kotlin/src/generated).
#
#   kotlin_classes main       generated bindings + kotlin/src/main/kotlin   -> $KOTLIN_OUT/main
#   kotlin_classes test       kotlin/src/jvmTest (JUnit 5, kotlin-test)     -> $KOTLIN_OUT/test
#   kotlin_classes programs   kotlin/src/jvmExample + kotlin/src/jvmBench   -> $KOTLIN_OUT/programs
#                             (one kotlinc run for both: each run costs ~20 s on 2 cores)
#
# Sets KOTLIN_OUT and the jar paths COROUTINES, OKHTTP, JUNIT.
KOTLIN_OUT="$PWD/kotlin/build/jvm"
COROUTINES="$KOTLIN_LIB/kotlinx-coroutines-core-jvm.jar"
# OkHttp (Debian libokhttp-java, installed by install-kotlin.sh) for the Interceptor glue.
OKHTTP="/usr/share/java/okhttp.jar:/usr/share/java/okio.jar"
# JUnit 5 (Debian junit5): the Jupiter API, engine and the Platform launcher in one jar.
JUNIT=/usr/share/java/junit-platform-console-standalone.jar

# kotlinc_cached NAME CLASSPATH KEY SOURCES...: compiles into $KOTLIN_OUT/NAME unless the same
# compiler, classpath, key and sources were already compiled there.
kotlinc_cached() {
    local name="$1" cp="$2" key="$3"; shift 3
    local stamp start
    mkdir -p "$KOTLIN_OUT"
    stamp="$( { echo "$KOTLINC $cp $key $*"; cat "$@"; } | sha256sum | cut -d' ' -f1)"
    if [[ -f "$KOTLIN_OUT/$name.stamp" && "$(cat "$KOTLIN_OUT/$name.stamp")" == "$stamp" ]]; then
        echo "${0##*/}: $name classes up to date" >&2
        return
    fi
    rm -rf "${KOTLIN_OUT:?}/$name" "$KOTLIN_OUT/$name.stamp"
    start=$(date +%s)
    "$KOTLINC" -Werror -jvm-target 17 -cp "$cp" -d "$KOTLIN_OUT/$name" "$@" >&2
    echo "$stamp" >"$KOTLIN_OUT/$name.stamp"
    echo "${0##*/}: compiled $name in $(( $(date +%s) - start )) s" >&2
}

kotlin_classes() {
    local sources=()
    case "$1" in
        main)
            mapfile -t sources < <(find kotlin/src/generated/kotlin kotlin/src/main/kotlin -name '*.kt' | sort)
            kotlinc_cached main "$JNA_JAR:$COROUTINES:$OKHTTP" "" "${sources[@]}"
            ;;
        test)
            kotlin_classes main
            mapfile -t sources < <(find kotlin/src/jvmTest/kotlin -name '*.kt' | sort)
            kotlinc_cached test "$JNA_JAR:$COROUTINES:$OKHTTP:$JUNIT:$KOTLIN_LIB/kotlin-test.jar:$KOTLIN_OUT/main" \
                "$(cat "$KOTLIN_OUT/main.stamp")" "${sources[@]}"
            ;;
        programs)
            kotlin_classes main
            mapfile -t sources < <(find kotlin/src/jvmExample/kotlin kotlin/src/jvmBench/kotlin -name '*.kt' | sort)
            kotlinc_cached programs "$JNA_JAR:$COROUTINES:$KOTLIN_OUT/main" "$(cat "$KOTLIN_OUT/main.stamp")" "${sources[@]}"
            ;;
        *) echo "kotlin_classes: main|test|programs" >&2; return 2 ;;
    esac
}
