#!/usr/bin/env bash
# The one test entry point of Latchkey: installs what the tests need on a fresh machine
# (npm packages of the test provider, the django-oauth-toolkit virtualenv, the Kotlin
# compiler, the Swift chroot; cached copies are reused) and runs every test: Rust unit and
# end-to-end tests against the real test providers (node-oidc-provider and
# django-oauth-toolkit) with real processes, then the Swift and Kotlin binding tests.
#
#   scripts/test.sh            everything
#   scripts/test.sh --rust     Rust only (lint + unit + end-to-end)
#
# Environment: LATCHKEY_SOAK_SECS (multi-process soak length, default 30),
# LATCHKEY_DOT_SOAK_SECS (the same against django-oauth-toolkit, default 6),
# LATCHKEY_DOT_CACHE (where the virtualenv is cached, default /var/cache/latchkey),
# LATCHKEY_KILL_TRIALS (SIGKILL trials, default 20), LATCHKEY_MATRIX_LANES (fault-matrix
# cells run at once, default 2), LATCHKEY_SKIP_SWIFT=1,
# LATCHKEY_SKIP_KOTLIN=1. The test provider's npm packages are installed once, here; test
# binaries run with LATCHKEY_OP_NO_NPM=1 and never run npm themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

only_rust=false
[ "${1:-}" = "--rust" ] && only_rust=true

step() { printf '\n==> %s\n' "$*"; }

step "test provider dependencies (tests/op)"
# One `npm ci` per run, here: node_modules is current when its marker holds the SHA-256 of
# package-lock.json (the check of tests/src/op.rs `installed()`, which writes the same marker
# when it installs). LATCHKEY_OP_NO_NPM then keeps the test binaries from running npm.
sha256_of() { if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1"; else shasum -a 256 "$1"; fi; }
op_lock_digest=$(sha256_of tests/op/package-lock.json | cut -d' ' -f1)
op_marker=tests/op/node_modules/.latchkey-npm-ci
if [ ! -f tests/op/node_modules/oidc-provider/package.json ] ||
  [ "$(cat "$op_marker" 2>/dev/null || true)" != "$op_lock_digest" ]; then
  (cd tests/op && npm ci --no-audit --no-fund --loglevel=error)
  printf '%s' "$op_lock_digest" >"$op_marker"
fi
export LATCHKEY_OP_NO_NPM=1

step "second test provider: django-oauth-toolkit (tests/dot, cached virtualenv)"
LATCHKEY_DOT_PYTHON=$(scripts/install-dot.sh)
export LATCHKEY_DOT_PYTHON

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --features latchkey/cli -- -D warnings
# The public API of the `latchkey` crate against the committed core/public-api.txt.
scripts/public-api.sh
if ! command -v shellcheck >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -qq shellcheck >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq shellcheck >/dev/null 2>&1; }) || true
fi
if command -v shellcheck >/dev/null 2>&1; then
  shellcheck -S warning scripts/*.sh scripts/lib/*.sh .ci/run
else
  echo "shellcheck not installed; skipping script lint"
fi

step "Rust unit tests and end-to-end tests (real provider, real processes)"
cargo build --workspace --all-targets --features latchkey/cli
cargo test --workspace --features latchkey/cli --exclude latchkey-e2e
# End-to-end binaries one at a time: they start providers and worker processes.
for t in tests/tests/*.rs; do
  name=$(basename "$t" .rs)
  if [ "$name" = multiprocess ] || [ "$name" = fault_matrix ]; then
    # Timing-sensitive and printing their tables: one test at a time.
    cargo test -p latchkey-e2e --features latchkey/cli --test "$name" -- --test-threads=1 --nocapture
  else
    cargo test -p latchkey-e2e --features latchkey/cli --test "$name" -- --test-threads=2
  fi
done
cargo test -p latchkey-e2e --features latchkey/cli --lib --bins

if [ "$only_rust" = true ]; then
  exit 0
fi

if [ "${LATCHKEY_SKIP_KOTLIN:-0}" != 1 ] && [ -x scripts/test-kotlin.sh ]; then
  step "Kotlin binding tests (JVM, JNA)"
  scripts/test-kotlin.sh
fi
if [ "${LATCHKEY_SKIP_SWIFT:-0}" != 1 ] && [ -x scripts/test-swift.sh ]; then
  step "Swift binding tests (Swift 6 on Linux, XCTest)"
  scripts/test-swift.sh
fi
step "all tests passed"
