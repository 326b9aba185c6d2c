# shellcheck shell=bash
# Starts the test provider (tests/op) in the background for a binding test script and sets
# ISSUER. The provider exits with the calling script (--parent-pid) and on EXIT (trap).
# Usage: start_test_provider NAME   (NAME labels the messages)
start_test_provider() {
    local name="$1"
    [[ -d tests/op/node_modules ]] || (cd tests/op && npm ci --no-audit --no-fund >&2)
    OP_OUT="$(mktemp)"
    node tests/op/server.js --no-stdin-watch --parent-pid $$ >"$OP_OUT" 2>"$OP_OUT.log" &
    OP_PID=$!
    trap 'kill "$OP_PID" 2>/dev/null || true; rm -f "$OP_OUT" "$OP_OUT.log"' EXIT
    ISSUER=""
    for _ in $(seq 1 300); do
        ISSUER="$(sed -n 's/.*"issuer":"\([^"]*\)".*/\1/p' "$OP_OUT" | head -n1)"
        [[ -n "$ISSUER" ]] && break
        kill -0 "$OP_PID" 2>/dev/null || { cat "$OP_OUT.log" >&2; echo "$name: test provider exited" >&2; exit 1; }
        sleep 0.1
    done
    [[ -n "$ISSUER" ]] || { echo "$name: test provider not ready after 30 s" >&2; exit 1; }
    echo "$name: test provider at $ISSUER" >&2
}
