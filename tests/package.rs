//! The packaged plugin as Grafana installs it: `scripts/package.sh` assembles dist/ and the zip;
//! this checks that dist/ holds everything Grafana loads, that the built plugin.json passes
//! Grafana's schema, that the binary starts from dist/ (finding libduckdb.so beside itself) and
//! answers as a plugin, and that the zip holds the same files with the same modes.
//! Ignored by plain `cargo test` (it needs the package); `scripts/test.sh` and CI build the
//! package and then run it with `--ignored`.
mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::test_fixtures::run;
use common::Plugin;
use serde_json::{json, Value};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const ID: &str = "vibe-claudecode-datasource";

fn dist() -> PathBuf {
    std::env::var_os("PLUGIN_DIST").map(PathBuf::from).unwrap_or_else(|| Path::new(ROOT).join("dist"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e} (run scripts/package.sh)", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir` with its mode bits, relative paths with `/`.
fn files(dir: &Path) -> BTreeMap<String, u32> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, u32>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                walk(base, &entry.path(), out);
            } else {
                let rel = entry.path().strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/");
                out.insert(rel, meta.permissions().mode() & 0o777);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
#[ignore = "needs the package: scripts/package.sh, then cargo test --test package -- --ignored"]
fn dist_holds_what_grafana_loads_and_plugin_json_is_valid() {
    let dist = dist();
    let built = read_json(&dist.join("plugin.json"));
    let errors = common::plugin_schema_errors(&built);
    assert!(errors.is_empty(), "dist/plugin.json: {errors:#?}");
    // the canonical plugin.json with the placeholders filled in and the build mode the frontend
    // build records; nothing else changed
    assert_eq!(built["buildMode"], "production");
    assert_eq!(built["info"]["version"], env!("CARGO_PKG_VERSION"));
    let updated = built["info"]["updated"].as_str().unwrap();
    assert!(updated.len() == 10 && updated.as_bytes()[4] == b'-' && updated.as_bytes()[7] == b'-', "updated {updated}");
    let mut canonical = read_json(&Path::new(ROOT).join("plugin.json"));
    canonical["info"]["version"] = built["info"]["version"].clone();
    canonical["info"]["updated"] = built["info"]["updated"].clone();
    canonical["buildMode"] = built["buildMode"].clone();
    assert_eq!(built, canonical);

    let files = files(&dist);
    for required in ["module.js", "README.md", "CHANGELOG.md", "LICENSE", "libduckdb.so", "gpx_claudecode_linux_amd64"] {
        assert!(files.contains_key(required), "dist/{required} missing; have {:?}", files.keys());
    }
    for logo in [&built["info"]["logos"]["small"], &built["info"]["logos"]["large"]] {
        assert!(files.contains_key(logo.as_str().unwrap()), "logo {logo}");
    }
    for include in built["includes"].as_array().unwrap() {
        let path = include["path"].as_str().unwrap();
        let shipped = std::fs::read(dist.join(path)).unwrap_or_else(|e| panic!("dist/{path}: {e}"));
        assert_eq!(shipped, std::fs::read(Path::new(ROOT).join(path)).unwrap(), "dist/{path} differs from the source");
    }
    assert_eq!(files["gpx_claudecode_linux_amd64"], 0o755, "Grafana execs the binary");
    let module = std::fs::read_to_string(dist.join("module.js")).unwrap();
    assert!(module.contains(&format!("public/plugins/{ID}/")), "module.js is built for this plugin id");
    assert!(!std::fs::read_to_string(dist.join("README.md")).unwrap().contains("%VERSION%"));
}

#[tokio::test]
#[ignore = "needs the package: scripts/package.sh, then cargo test --test package -- --ignored"]
async fn packaged_binary_runs_as_a_plugin_from_dist() {
    let binary = dist().join("gpx_claudecode_linux_amd64");
    assert!(binary.exists(), "{} missing (run scripts/package.sh)", binary.display());
    // started exactly as Grafana does; libduckdb.so must come from dist/ through the rpath
    let plugin = Plugin::start_program(&binary, tempfile::tempdir().unwrap(), "127.0.0.1:0", "127.0.0.1:0").await;
    assert!(plugin.handshake.starts_with("1|2|tcp|127.0.0.1:"), "{}", plugin.handshake);
    plugin.ingest_http(&run("tools", "http/protobuf")).await;
    let r = plugin.query(json!({"queryType": "stat", "measure": "cost"}), 1_700_000_000, 1_900_000_000).await;
    assert_eq!(r.error, "");
    assert!((r.frames[0].field("value").f64s()[0] - 0.048449).abs() < 1e-9);
}

#[test]
#[ignore = "needs the package: scripts/package.sh, then cargo test --test package -- --ignored"]
fn zip_holds_dist_in_one_folder_named_after_the_plugin() {
    let zip = Path::new(ROOT).join(format!("{ID}-{}.zip", env!("CARGO_PKG_VERSION")));
    assert!(zip.exists(), "{} missing (run scripts/package.sh)", zip.display());
    // unzip -Z: zipinfo's listing, mode string first and name last on each entry line
    let out = std::process::Command::new("unzip").arg("-Z").arg(&zip).output().expect("unzip (zipinfo)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8_lossy(&out.stdout);
    let mut in_zip = BTreeMap::new();
    for line in listing.lines().filter(|l| l.starts_with('-')) {
        let mode = &line[..10];
        let name = line.rsplit(' ').next().unwrap();
        let rel = name.strip_prefix(&format!("{ID}/")).unwrap_or_else(|| panic!("{name} outside {ID}/"));
        in_zip.insert(rel.to_string(), mode.to_string());
    }
    let expected: BTreeMap<String, String> = files(&dist())
        .into_iter()
        .map(|(name, mode)| (name, if mode == 0o755 { "-rwxr-xr-x".to_string() } else { "-rw-r--r--".to_string() }))
        .collect();
    assert_eq!(in_zip, expected);
}
