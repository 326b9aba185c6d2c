#!/usr/bin/env bash
# Latchkey's main job in one command: sign in once, then keep ONE session fresh across
# several processes of an app, with the provider rotating the refresh token on every use.
#
#   scripts/demo.sh
#
# On a fresh clone it installs what it needs (the test provider's npm packages, the
# `latchkey` CLI and the headless browser), starts the test provider (node-oidc-provider) on
# 127.0.0.1 with 2-second access tokens, registers, signs the test user in headlessly, then
# runs three processes (app, notification-extension, widget) that keep the session fresh for
# 20 s against one shared state directory, and prints a summary: refreshes served by the
# provider, tokens adopted from another process, reuse detections (must be 0) and a
# per-process timeline.
#
# Needs: cargo (Rust toolchain of rust-toolchain.toml), node >= 20 and npm.
# Environment: DEMO_DURATION (seconds, default 20), DEMO_ACCESS_TOKEN_TTL (seconds, default
# 2), DEMO_TASKS (concurrent token requests per process, default 4), DEMO_KEEP=1 keeps the
# work directory (state dir, event logs).
# Exit status: 0 when the provider saw no refresh token reuse, served exactly the refreshes
# the processes made, and no process lost the session; 1 otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${DEMO_DURATION:-20}
TTL=${DEMO_ACCESS_TOKEN_TTL:-2}
TASKS=${DEMO_TASKS:-4}
HOLDERS=(app notification-extension widget)

step() { printf '\n==> %s\n' "$*"; }
indent() { sed -e '/^[[:space:]]*$/d' -e 's/^/    /'; }
die() {
  printf 'demo: %s\n' "$*" >&2
  exit 1
}

# --- what it needs -----------------------------------------------------------------------

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 ||
  die "cargo not found: install the Rust toolchain (rustup, see rust-toolchain.toml) and run again"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  die "node and npm not found: install Node.js 20 or newer (e.g. apt-get install nodejs npm) and run again"
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js $(node --version) is too old for the test provider: install Node.js 20 or newer"

step "Preparing (first run: npm packages and a Rust build, a few minutes)"
# Same rule as the Rust harness (tests/src/op.rs): node_modules is current when its marker
# holds the SHA-256 of package-lock.json.
lock_digest=$(node -e 'const c=require("crypto"),f=require("fs");console.log(c.createHash("sha256").update(f.readFileSync("tests/op/package-lock.json")).digest("hex"))')
marker=tests/op/node_modules/.latchkey-npm-ci
if [ ! -f tests/op/node_modules/oidc-provider/package.json ] ||
  [ "$(cat "$marker" 2>/dev/null || true)" != "$lock_digest" ]; then
  echo "    npm ci in tests/op"
  (cd tests/op && npm ci --no-audit --no-fund --loglevel=error) 2>&1 | indent
  printf '%s\n' "$lock_digest" >"$marker"
fi
echo "    cargo build: latchkey CLI and the headless browser"
cargo build --quiet -p latchkey --features cli --bin latchkey
cargo build --quiet -p latchkey-e2e --bin latchkey-browser
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
LATCHKEY="$TARGET_DIR/debug/latchkey"
BROWSER="$TARGET_DIR/debug/latchkey-browser"
if [ ! -x "$LATCHKEY" ] || [ ! -x "$BROWSER" ]; then
  die "the build did not produce $LATCHKEY and $BROWSER"
fi

# --- the test provider -------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-demo.XXXXXX")
STATE="$WORK/state"
OP_PID=""
CHILDREN=()
cleanup() {
  local rc=$?
  local p
  for p in "${CHILDREN[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  if [ -n "$OP_PID" ]; then
    kill "$OP_PID" 2>/dev/null || true
    wait "$OP_PID" 2>/dev/null || true
  fi
  if [ "${DEMO_KEEP:-0}" = 1 ]; then
    echo "demo: work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "Starting the test provider (node-oidc-provider, ${TTL} s access tokens, refresh tokens rotate on every use)"
# --parent-pid: the provider also exits by itself if this script dies without its trap.
node tests/op/server.js --access-token-ttl "$TTL" --no-stdin-watch --parent-pid $$ \
  >"$WORK/op.out" 2>"$WORK/op.err" &
OP_PID=$!
for _ in $(seq 300); do
  [ -s "$WORK/op.out" ] && break
  kill -0 "$OP_PID" 2>/dev/null || die "the test provider did not start: $(tail -n 5 "$WORK/op.err")"
  sleep 0.1
done
[ -s "$WORK/op.out" ] || die "the test provider printed no ready line within 30 s"
ISSUER=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").split("\n")[0]).issuer)' "$WORK/op.out")
echo "    issuer $ISSUER"

lk() { "$LATCHKEY" --state-dir "$STATE" --insecure-loopback "$@"; }

# --- register and sign in ----------------------------------------------------------------

step "Registering a native app (dynamic registration, loopback redirect URI)"
lk register --issuer "$ISSUER" --redirect-uri http://127.0.0.1/callback --client-name "Latchkey demo" | indent

step "Signing in as alice (a headless browser plays the user: login page, consent, redirect)"
lk --holder app login >"$WORK/login.out" 2>"$WORK/login.err" &
LOGIN_PID=$!
CHILDREN+=("$LOGIN_PID")
for _ in $(seq 300); do
  [ -s "$WORK/login.out" ] && break
  kill -0 "$LOGIN_PID" 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$WORK/login.out" ]; then
  wait "$LOGIN_PID" || true
  die "login did not start: $(cat "$WORK/login.err")"
fi
URL=$(head -n 1 "$WORK/login.out")
echo "    authorization URL ${URL:0:72}..."
if ! "$BROWSER" --deliver "$URL" >"$WORK/browser.out" 2>"$WORK/browser.err"; then
  wait "$LOGIN_PID" || true
  die "the headless sign-in failed: $(cat "$WORK/login.err" "$WORK/browser.err" | head -n 3)"
fi
if ! wait "$LOGIN_PID"; then
  die "login failed: $(cat "$WORK/login.err")"
fi
tail -n +2 "$WORK/login.out" | indent

# --- three processes keep the session fresh ----------------------------------------------

step "Running ${#HOLDERS[@]} processes for ${DURATION} s, ${TASKS} tasks each asking for a fresh token every ~150 ms"
echo "    (all share $STATE: lock.db, registration.json, session.json)"
WATCH_PIDS=()
for h in "${HOLDERS[@]}"; do
  lk --holder "$h" watch --duration "$DURATION" --tasks "$TASKS" >"$WORK/$h.jsonl" 2>"$WORK/$h.err" &
  WATCH_PIDS+=("$!")
  CHILDREN+=("$!")
done

count() { cat "$WORK"/*.jsonl 2>/dev/null | grep -c "\"event\":\"$1\"" || true; }
per_holder() {
  local h out=""
  for h in "${HOLDERS[@]}"; do
    out+="${out:+, }$h $(grep -c '"event":"refreshed"' "$WORK/$h.jsonl" 2>/dev/null || true)"
  done
  printf '%s' "$out"
}
progress() {
  local gen
  gen=$(cat "$WORK"/*.jsonl 2>/dev/null | grep -o '"generation":[0-9]*' | cut -d: -f2 | sort -n | tail -n 1 || true)
  printf '    %3d s  generation %-3s refreshed %-3s adopted %-3s errors %-2s (by %s)' \
    "$((SECONDS - started))" "${gen:-?}" "$(count refreshed)" "$(count adopted)" \
    "$(($(count error) + $(count refresh_failed)))" "$(per_holder)"
}
started=$SECONDS
tty=false
[ -t 1 ] && tty=true
while :; do
  sleep 1
  alive=0
  for p in "${WATCH_PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null && alive=$((alive + 1))
  done
  [ "$alive" -eq 0 ] && break
  if [ "$tty" = true ]; then
    printf '\r%s\033[K' "$(progress)"
  else
    printf '%s\n' "$(progress)"
  fi
done
[ "$tty" = true ] && printf '\r%s\033[K\n' "$(progress)"

EXIT_CODES=()
for p in "${WATCH_PIDS[@]}"; do
  if wait "$p"; then EXIT_CODES+=(0); else EXIT_CODES+=("$?"); fi
done
for i in "${!HOLDERS[@]}"; do
  if [ "${EXIT_CODES[$i]}" -ne 0 ]; then
    echo "    ${HOLDERS[$i]} exited with ${EXIT_CODES[$i]}: $(tail -n 1 "$WORK/${HOLDERS[$i]}.err")"
  fi
done

# --- summary -----------------------------------------------------------------------------

step "Summary"
node - "$WORK" "$ISSUER" "$DURATION" "$TTL" "$TASKS" "${HOLDERS[*]}" "${EXIT_CODES[*]}" <<'JS'
const fs = require('fs');
const [work, issuer, duration, ttl, tasks, holdersArg, codesArg] = process.argv.slice(2);
const holders = holdersArg.split(' ');
const codes = codesArg.split(' ').map(Number);

(async () => {
  let counters;
  try {
    const res = await fetch(`${issuer}/__admin/counters`);
    counters = await res.json();
  } catch (e) {
    console.log(`    cannot read the provider's counters: ${e.message}`);
    process.exit(1);
  }
  const events = [];
  const summaries = {};
  for (const h of holders) {
    const text = fs.existsSync(`${work}/${h}.jsonl`) ? fs.readFileSync(`${work}/${h}.jsonl`, 'utf8') : '';
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let v;
      try { v = JSON.parse(line); } catch { continue; }
      if (v.summary) summaries[h] = v.summary; else events.push(v);
    }
  }
  const of = (name, h) => events.filter((e) => e.event === name && (h === undefined || e.holder === h));
  const refreshes = of('refreshed').sort((a, b) => a.at_ms - b.at_ms);
  const adoptions = of('adopted');
  const ended = holders.filter((h, i) => codes[i] !== 0 || (summaries[h] && summaries[h].session_ended));
  const calls = Object.values(summaries).reduce((n, s) => n + s.calls, 0);
  const slowest = Math.max(0, ...Object.values(summaries).map((s) => s.slowest_call_ms));
  const errors = of('error').length + of('refresh_failed').length;
  const pad = (s, n) => String(s).padEnd(n);
  const num = (s, n) => String(s).padStart(n);

  console.log(`    ${holders.length} processes x ${tasks} tasks, ${duration} s, ${ttl} s access tokens, one shared state directory`);
  console.log('');
  console.log(`    refreshes served by the provider       ${num(counters.refresh_grants, 4)}   (refresh_token grants, each rotating the refresh token)`);
  console.log(`    refreshes made by the processes        ${num(refreshes.length, 4)}   (${holders.map((h) => `${h} ${of('refreshed', h).length}`).join(', ')})`);
  console.log(`    tokens adopted from another process    ${num(adoptions.length, 4)}   (loaded from the shared store, no network)`);
  console.log(`    reuse detections                       ${num(counters.reuse_detections, 4)}   (a consumed refresh token sent again: must be 0)`);
  console.log(`    token requests answered                ${num(calls, 4)}   (slowest ${slowest} ms; ${errors} transient failure(s))`);
  console.log(`    processes that lost the session        ${num(ended.length, 4)}   ${ended.length ? '(' + ended.join(', ') + ')' : ''}`);
  console.log('');
  console.log('    Per process');
  for (const h of holders) {
    const s = summaries[h] || {};
    console.log(`      ${pad(h, 24)} refreshed ${num(s.refreshed ?? '?', 3)}  adopted ${num(s.adopted ?? '?', 3)}  requests ${num(s.calls ?? '?', 5)}  generation ${s.first_generation ?? '?'} -> ${s.final_generation ?? '?'}`);
  }
  console.log('');
  console.log('    Timeline: who refreshed when (the others adopted the new generation)');
  const t0 = Math.min(...events.filter((e) => e.event === 'started').map((e) => e.at_ms));
  for (const r of refreshes) {
    const followers = adoptions
      .filter((a) => a.generation === r.generation && a.holder !== r.holder)
      .sort((a, b) => a.at_ms - b.at_ms)
      .map((a) => `${a.holder} +${Math.max(0, a.at_ms - r.at_ms)} ms`);
    console.log(`      ${num(((r.at_ms - t0) / 1000).toFixed(2), 6)} s  generation ${num(r.generation, 3)}  ${pad(r.holder, 24)} ${followers.length ? 'adopted by ' + followers.join(', ') : ''}`);
  }
  // Failures, grouped: the tasks of one process share one refresh, so they fail together.
  const groups = new Map();
  for (const e of events.filter((x) => x.event === 'error' || x.event === 'refresh_failed' || x.event === 'session_ended')) {
    const key = `${e.holder}|${e.message || e.detail || ''}|${Math.round((e.at_ms - t0) / 100)}`;
    const g = groups.get(key) || { first: e, calls: 0, refreshes: 0, ended: 0 };
    if (e.event === 'error') g.calls += 1;
    if (e.event === 'refresh_failed') g.refreshes += 1;
    if (e.event === 'session_ended') g.ended += 1;
    groups.set(key, g);
  }
  if (groups.size) {
    console.log('');
    console.log('    Failures (transient ones keep the session; the next request retries)');
  }
  for (const g of groups.values()) {
    const e = g.first;
    const what = [
      g.refreshes ? `refresh failed` : '',
      g.calls ? `${g.calls} token request(s) failed` : '',
      g.ended ? 'SESSION ENDED' : '',
    ].filter(Boolean).join(', ');
    console.log(`      ${num(((e.at_ms - t0) / 1000).toFixed(2), 6)} s  ${pad(e.holder, 24)} ${what}: ${e.message || e.detail || ''}`);
  }
  console.log('');
  const problems = [];
  if (counters.reuse_detections > 0) problems.push(`${counters.reuse_detections} refresh token reuse detection(s)`);
  if (ended.length) problems.push(`session lost in ${ended.join(', ')}`);
  if (counters.refresh_grants !== refreshes.length) {
    problems.push(`the provider served ${counters.refresh_grants} refreshes but the processes committed ${refreshes.length}`);
  }
  if (refreshes.length === 0) problems.push('no refresh happened');
  if (problems.length) {
    console.log(`    RESULT: FAILED: ${problems.join('; ')}`);
    process.exit(1);
  }
  console.log(`    RESULT: OK: ${refreshes.length} rotations, each refresh token used exactly once; all ${holders.length} processes stayed signed in.`);
})();
JS
