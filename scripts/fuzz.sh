#!/usr/bin/env bash
# Short fuzz run of every target in fuzz/ (cargo-fuzz, libFuzzer + AddressSanitizer, nightly):
# the OTLP protobuf and JSON decoders (seeded with the captured fixtures) and the raw SQL macro
# expander. FUZZ_SECONDS per target (default 20). A crash fails the run and leaves its input in
# fuzz/artifacts/<target>/; turn it into a regression test before fixing.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${GPX_CACHE_DIR:-$HOME/.cache/gpx_claudecode}"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
export CARGO_TARGET_DIR="$CACHE/fuzz-target"
CORPUS="$CACHE/fuzz-corpus"
FIXTURES="../shared/claude-code/fixtures"
mkdir -p "$CORPUS/decode_protobuf" "$CORPUS/decode_json" "$CORPUS/sql_macros"
if [ -d "$FIXTURES" ]; then
  find "$FIXTURES" -name '*.pb' -exec cp -n {} "$CORPUS/decode_protobuf/" \;
  find "$FIXTURES" -name '*.json' ! -name manifest.json -exec cp -n {} "$CORPUS/decode_json/" \;
fi
printf '%s' 'SELECT $__timeGroupAlias(time, $__interval, 0), count(*) FROM events WHERE $__timeFilter(time) GROUP BY 1' \
  > "$CORPUS/sql_macros/seed.sql"
for target in decode_protobuf decode_json sql_macros; do
  echo "==> fuzz $target (${SECONDS_PER_TARGET}s)" >&2
  cargo +nightly fuzz run -O "$target" "$CORPUS/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -max_len=1048576 -print_final_stats=0
done
