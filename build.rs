//! Links the official prebuilt libduckdb.so unless the `bundled` feature builds DuckDB from source
//! or `DUCKDB_STATIC` links a static DuckDB compiled before (the release binaries,
//! scripts/build-static.sh).
//!
//! The library lives in `$DUCKDB_LIB_DIR` when set, else in `<target dir>/duckdb-1.5.6/`, where
//! `scripts/fetch-duckdb.sh` puts it on first build (from the npm registry). It is copied beside
//! the built binaries and found at run time through the rpath `$ORIGIN` (and `$ORIGIN/..` for
//! test binaries in `deps/`), so the plugin directory ships `libduckdb.so` next to the executable.
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=scripts/fetch-duckdb.sh");
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    println!("cargo:rerun-if-env-changed=DUCKDB_STATIC");
    if env::var_os("CARGO_FEATURE_BUNDLED").is_some() {
        return;
    }
    if env::var("DUCKDB_STATIC").is_ok_and(|v| v != "0") {
        // libduckdb-sys links $DUCKDB_LIB_DIR/libduckdb_static.a (scripts/build-static.sh);
        // DuckDB is C++, and nothing else names its runtime. Zig, the static builds' linker,
        // links LLVM's libc++ into the binary for this name.
        println!("cargo:rustc-link-lib=c++");
        return;
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out
    let profile_dir = out_dir.ancestors().nth(3).expect("OUT_DIR has the layout <target>/<profile>/build/<pkg>/out").to_path_buf();
    let lib_dir = match env::var_os("DUCKDB_LIB_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let target_root = profile_dir.parent().unwrap_or(&profile_dir);
            target_root.join("duckdb-1.5.6")
        }
    };
    let lib = lib_dir.join("libduckdb.so");
    if !lib.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-duckdb.sh");
        let status = Command::new("bash").arg(&script).arg(&lib_dir).status();
        match status {
            Ok(s) if s.success() => {}
            other => panic!(
                "libduckdb.so is missing in {} and {} failed ({other:?}); \
                 set DUCKDB_LIB_DIR to a directory holding libduckdb.so 1.5.6 or build with --features bundled",
                lib_dir.display(),
                script.display()
            ),
        }
    }
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN:$ORIGIN/..");
    copy_if_changed(&lib, &profile_dir.join("libduckdb.so"));
}

fn copy_if_changed(src: &Path, dest: &Path) {
    let same = match (std::fs::metadata(src), std::fs::metadata(dest)) {
        (Ok(a), Ok(b)) => a.len() == b.len(),
        _ => false,
    };
    if !same {
        let tmp = dest.with_extension("so.tmp");
        std::fs::copy(src, &tmp)
            .and_then(|_| std::fs::rename(&tmp, dest))
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", src.display(), dest.display()));
    }
}
