#!/usr/bin/env bash
# Builds gpx_claudecode as fully static binaries (musl, DuckDB compiled in): one file per
# architecture that runs on Alpine, on any glibc and in distroless images, with nothing beside it.
#   scripts/build-static.sh [TARGET...]    (default: x86_64 and aarch64 unknown-linux-musl)
# Binaries land in $CARGO_TARGET_DIR/<target>/release/gpx_claudecode.
#
# The C/C++ cross compiler is Zig (PyPI's ziglang, with cargo-zigbuild), installed into
# $GPX_CACHE_DIR; the Rust targets come from rustup. DuckDB from source costs tens of CPU-minutes
# per target, so its static library is built once per DuckDB version, target and compiler into
# $GPX_CACHE_DIR/duckdb-static/ (outside the clone, like the target dir) and linked from there.
# The quick development build (cargo build / cargo test) keeps linking the prebuilt libduckdb.so.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${GPX_CACHE_DIR:-$HOME/.cache/gpx_claudecode}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

ZIGLANG=0.17.1
CARGO_ZIGBUILD=0.24.1
# libduckdb-sys 1.10506.1 = DuckDB 1.5.6 (Cargo.toml pins it)
DUCKDB=1.5.6
# tools/duckdb-static says what is compiled (DuckDB's core and its JSON extension): its manifest
# is part of the cache key
# cargo-zigbuild asks zig for debug info (-g) on every compile; DuckDB's would make the build
# slower and the archive GBs big, for a binary that keeps only symbols. -g0 comes after it.
DUCKDB_CXXFLAGS="-g0"
RECIPE="$( (cat tools/duckdb-static/Cargo.toml; echo "$DUCKDB_CXXFLAGS") | sha256sum | cut -c1-12)"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)

log() { echo "build-static.sh: $*" >&2; }

# --- toolchain -----------------------------------------------------------------------------
VENV="$CACHE/zig-$ZIGLANG-cargo-zigbuild-$CARGO_ZIGBUILD"
if [ ! -x "$VENV/bin/cargo-zigbuild" ] || ! "$VENV/bin/python3" -m ziglang version >/dev/null 2>&1; then
  log "installing ziglang $ZIGLANG and cargo-zigbuild $CARGO_ZIGBUILD from PyPI into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "ziglang==$ZIGLANG" "cargo-zigbuild==$CARGO_ZIGBUILD"
fi
# cargo-zigbuild runs `python3 -m ziglang` when no zig is on PATH: the venv's python3 has it
export PATH="$VENV/bin:$PATH"
for target in "${TARGETS[@]}"; do
  if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
  fi
done

# --- DuckDB, once per version, target and compiler -----------------------------------------
duckdb_static() {
  local target="$1"
  local dir="$CACHE/duckdb-static/duckdb-$DUCKDB-$RECIPE-zig-$ZIGLANG/$target"
  if [ ! -f "$dir/libduckdb_static.a" ]; then
    local build="$CACHE/duckdb-static/build"
    local started=$SECONDS
    log "compiling DuckDB $DUCKDB for $target (once; cached in $dir)"
    # libduckdb-sys's own bundled build, alone: the same sources, defines and flags as
    # `--features bundled`, with the release profile's optimisation
    CXXFLAGS="$DUCKDB_CXXFLAGS" CARGO_TARGET_DIR="$build" cargo zigbuild --release --locked --quiet -p duckdb-static --target "$target"
    local lib
    lib="$(ls -t "$build/$target"/release/build/libduckdb-sys-*/out/libduckdb.a | head -1)"
    mkdir -p "$dir.tmp"
    cp "$lib" "$dir.tmp/libduckdb_static.a"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    # the object files (GBs) are in the archive now
    rm -rf "$build/$target"/release/build/libduckdb-sys-*/out
    log "DuckDB for $target compiled in $((SECONDS - started)) s"
  fi
  echo "$dir"
}

for target in "${TARGETS[@]}"; do
  lib_dir="$(duckdb_static "$target")"
  log "gpx_claudecode for $target"
  # libduckdb-sys links libduckdb_static.a from DUCKDB_LIB_DIR; build.rs adds the C++ runtime
  DUCKDB_LIB_DIR="$lib_dir" DUCKDB_STATIC=1 \
    cargo zigbuild --release --locked --quiet --bin gpx_claudecode --target "$target"
done
