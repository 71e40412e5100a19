#!/usr/bin/env bash
# Fetch the official prebuilt libduckdb.so (DuckDB 1.5.6, linux x86_64) into DIR.
# It ships inside the npm registry package @duckdb/node-bindings-linux-x64, which is reachable
# wherever npm is; build.rs calls this when the library is missing.
#   scripts/fetch-duckdb.sh DIR
set -euo pipefail
DEST="${1:?usage: fetch-duckdb.sh DIR}"
PKG="@duckdb/node-bindings-linux-x64@1.5.6-r.1"
if [ -f "$DEST/libduckdb.so" ]; then exit 0; fi
command -v npm >/dev/null || { echo "fetch-duckdb.sh: npm is needed to fetch $PKG" >&2; exit 1; }
mkdir -p "$DEST"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "$PKG" >/dev/null)
tar -xzf "$TMP"/*.tgz -C "$TMP"
# rename into place atomically so a concurrent build never sees half a library
cp "$TMP/package/libduckdb.so" "$DEST/.libduckdb.so.tmp"
cp "$TMP/package/LICENSE" "$DEST/LICENSE.duckdb"
mv "$DEST/.libduckdb.so.tmp" "$DEST/libduckdb.so"
echo "fetch-duckdb.sh: libduckdb.so from $PKG in $DEST" >&2
