#!/usr/bin/env bash
# Builds the installable plugin: the backend (release) and the frontend, assembled into dist/
# (Grafana's plugin directory layout) and vibe-claudecode-datasource-<version>.zip.
#   scripts/package.sh
# Needs cargo, npm and zip; works from a fresh clone (npm ci installs the frontend's locked
# dependencies, build.rs fetches libduckdb.so). CARGO_TARGET_DIR is honoured.
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

echo "==> backend (release)" >&2
cargo build --release --locked --bin gpx_claudecode

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
install -m 0755 "$TARGET_DIR/release/gpx_claudecode" dist/gpx_claudecode_linux_amd64
# the binary finds libduckdb.so beside itself (rpath $ORIGIN)
install -m 0644 "$TARGET_DIR/release/libduckdb.so" dist/libduckdb.so
if [ -f "$TARGET_DIR/duckdb-1.5.6/LICENSE.duckdb" ]; then
  install -m 0644 "$TARGET_DIR/duckdb-1.5.6/LICENSE.duckdb" dist/LICENSE.duckdb
fi
strip --strip-debug dist/gpx_claudecode_linux_amd64 2>/dev/null || true

echo "==> $ID-$VERSION.zip" >&2
ZIP="$ROOT/$ID-$VERSION.zip"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
# Grafana's plugin archives hold one folder named after the plugin id
cp -R dist "$STAGE/$ID"
rm -f "$ZIP"
(cd "$STAGE" && zip -qr -X "$ZIP" "$ID")
echo "package.sh: dist/ and $(basename "$ZIP") ready ($(du -sh dist | cut -f1) unpacked)" >&2
