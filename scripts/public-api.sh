#!/usr/bin/env bash
# The public API of the `latchkey` crate (default features), listed by cargo-public-api from
# rustdoc's JSON output (nightly toolchain), against the committed listing
# core/public-api.txt, so that every change to the API shows in review.
#
#   scripts/public-api.sh           fail, printing the difference, if the API drifted
#   scripts/public-api.sh --bless   rewrite core/public-api.txt from the code
#
# cargo-public-api is installed once into LATCHKEY_TOOL_CACHE (default /var/cache/latchkey)
# and reused.
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.52.0
root="${LATCHKEY_TOOL_CACHE:-/var/cache/latchkey}/cargo-public-api-${version}"
if [ ! -x "$root/bin/cargo-public-api" ]; then
  echo "installing cargo-public-api ${version} into ${root}" >&2
  cargo install --quiet --locked --root "$root" cargo-public-api --version "$version"
fi

current=$(mktemp)
trap 'rm -f "$current"' EXIT
# -ss: leave out blanket and auto-trait impls (Send, Sync, From<T> for T ...), which follow
# from the items themselves.
PATH="$root/bin:$PATH" cargo public-api --manifest-path core/Cargo.toml -ss --color never \
  >"$current" 2>/dev/null || {
  echo "cargo public-api failed; its output:" >&2
  PATH="$root/bin:$PATH" cargo public-api --manifest-path core/Cargo.toml -ss --color never >&2
  exit 1
}

if [ "${1:-}" = "--bless" ]; then
  cp "$current" core/public-api.txt
  echo "core/public-api.txt: $(wc -l <core/public-api.txt) items"
  exit 0
fi
if ! diff -u core/public-api.txt "$current"; then
  echo "The public API of latchkey differs from core/public-api.txt (above: - listed, + in the code)." >&2
  echo "If the change is intended, run scripts/public-api.sh --bless and commit the listing." >&2
  exit 1
fi
echo "public API unchanged ($(wc -l <"$current") items)"
