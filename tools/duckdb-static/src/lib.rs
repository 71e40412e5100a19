//! Nothing to run: building this crate compiles DuckDB into libduckdb-sys's OUT_DIR/libduckdb.a,
//! which `scripts/build-static.sh` caches per target (see Cargo.toml).
pub use libduckdb_sys as sys;
