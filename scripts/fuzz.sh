#!/usr/bin/env bash
# Fuzz smoke of Latchkey's decoders of untrusted input (cargo-fuzz, libFuzzer): runs every
# target in fuzz/ for a short while, starting from the committed seeds in fuzz/seeds/, and
# prints executions per second and findings. Opt-in: scripts/test.sh does not run it.
#
#   scripts/fuzz.sh                 every target, LATCHKEY_FUZZ_SECS each (default 20)
#   scripts/fuzz.sh callback jwks   only these targets
#
# Environment: LATCHKEY_FUZZ_SECS (seconds per target), LATCHKEY_FUZZ_SANITIZER (address,
# the default, or none). Needs the nightly toolchain and cargo-fuzz (installed from
# crates.io when missing). Runs under `nice -n 15`. New inputs go to fuzz/corpus/
# (not committed); crashes to fuzz/artifacts/TARGET/. Exit status 1 when anything was found.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${LATCHKEY_FUZZ_SECS:-20}"
sanitizer="${LATCHKEY_FUZZ_SANITIZER:-address}"
all_targets=(callback id_token logout_token metadata jwks token_response session_blob sqlite_rows)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

echo "==> building the fuzz targets (sanitizer: $sanitizer)"
nice -n 15 cargo +nightly fuzz build -O --sanitizer "$sanitizer"

found=0
printf '\n%-16s %10s %12s %9s %s\n' target runs "execs/s" corpus findings
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="$(mktemp)"
  before="$(find "artifacts/$t" -type f | wc -l)"
  status=0
  nice -n 15 cargo +nightly fuzz run -O --sanitizer "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=1024 -timeout=10 \
    >"$log" 2>&1 || status=$?
  after="$(find "artifacts/$t" -type f | wc -l)"
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  corpus="$(find "corpus/$t" -type f | wc -l)"
  findings=$((after - before))
  if [ "$status" -ne 0 ] || [ "$findings" -gt 0 ]; then
    found=1
    printf '%-16s %10s %12s %9s %s\n' "$t" "${runs:-?}" "${rate:-?}" "$corpus" \
      "FOUND (exit $status, $findings new in fuzz/artifacts/$t)"
    grep -E 'panicked|ERROR|SUMMARY' "$log" | head -n 5 || true
  else
    printf '%-16s %10s %12s %9s %s\n' "$t" "${runs:-?}" "${rate:-?}" "$corpus" none
  fi
  rm -f "$log"
done
exit "$found"
