#!/usr/bin/env bash
# Builds the installable plugin: the backend as static linux amd64 and arm64 binaries
# (scripts/build-static.sh) and the frontend, assembled into dist/ (Grafana's plugin directory
# layout) and vibe-claudecode-datasource-<version>.zip.
#   scripts/package.sh
# Needs cargo, npm, python3 and zip; works from a fresh clone (npm ci installs the frontend's
# locked dependencies, build-static.sh its compiler). CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
ID=vibe-claudecode-datasource
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

version() { sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1; }
VERSION="$(version)"
NPM_VERSION="$(node -p "require('./frontend/package.json').version")"
if [ "$VERSION" != "$NPM_VERSION" ]; then
  echo "package.sh: Cargo.toml version $VERSION differs from frontend/package.json $NPM_VERSION" >&2
  exit 1
fi

echo "==> backend (static: linux amd64 and arm64)" >&2
bash scripts/build-static.sh x86_64-unknown-linux-musl aarch64-unknown-linux-musl
# DuckDB's licence, from the same release as the compiled-in sources
bash scripts/fetch-duckdb.sh "$TARGET_DIR/duckdb-1.5.6"

echo "==> frontend" >&2
(
  cd frontend
  # reinstall only when the lockfile changed since the last install
  if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.lock-installed; then
    npm ci --no-audit --no-fund
    cp package-lock.json node_modules/.lock-installed
  fi
  # ts-node (webpack's TypeScript config) on Node 20 needs CommonJS resolution
  TS_NODE_COMPILER_OPTIONS='{"module":"commonjs","moduleResolution":"node10"}' npm run build
)

echo "==> dist/" >&2
rm -rf dist
mkdir -p dist
cp -R frontend/dist/. dist/
cp -R dashboards dist/dashboards
# Grafana runs <executable>_<GOOS>_<GOARCH>; each is one self-contained file
install -m 0755 "$TARGET_DIR/x86_64-unknown-linux-musl/release/gpx_claudecode" dist/gpx_claudecode_linux_amd64
install -m 0755 "$TARGET_DIR/aarch64-unknown-linux-musl/release/gpx_claudecode" dist/gpx_claudecode_linux_arm64
install -m 0644 "$TARGET_DIR/duckdb-1.5.6/LICENSE.duckdb" dist/LICENSE.duckdb

echo "==> $ID-$VERSION.zip" >&2
ZIP="$ROOT/$ID-$VERSION.zip"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
# Grafana's plugin archives hold one folder named after the plugin id
cp -R dist "$STAGE/$ID"
rm -f "$ZIP"
(cd "$STAGE" && zip -qr -X "$ZIP" "$ID")
echo "package.sh: dist/ and $(basename "$ZIP") ready ($(du -sh dist | cut -f1) unpacked)" >&2
