//! The packaged plugin as Grafana installs it: `scripts/package.sh` assembles dist/ and the zip;
//! this checks that dist/ holds everything Grafana loads, that the built plugin.json passes
//! Grafana's schema, that both binaries are static (nothing but glibc <= 2.28 if anything ever
//! links dynamically), that the amd64 one answers as a plugin in an empty root (no libc at all:
//! Alpine, distroless) and the arm64 one under qemu-user, and that the zip holds the same files
//! with the same modes.
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
    for required in
        ["module.js", "README.md", "CHANGELOG.md", "LICENSE", "LICENSE.duckdb", "gpx_claudecode_linux_amd64", "gpx_claudecode_linux_arm64"]
    {
        assert!(files.contains_key(required), "dist/{required} missing; have {:?}", files.keys());
    }
    // static binaries: nothing beside them
    assert!(!files.keys().any(|f| f.ends_with(".so")), "a shared library in dist/: {:?}", files.keys());
    for logo in [&built["info"]["logos"]["small"], &built["info"]["logos"]["large"]] {
        assert!(files.contains_key(logo.as_str().unwrap()), "logo {logo}");
    }
    for include in built["includes"].as_array().unwrap() {
        let path = include["path"].as_str().unwrap();
        let shipped = std::fs::read(dist.join(path)).unwrap_or_else(|e| panic!("dist/{path}: {e}"));
        assert_eq!(shipped, std::fs::read(Path::new(ROOT).join(path)).unwrap(), "dist/{path} differs from the source");
    }
    for (name, _) in BINARIES {
        assert_eq!(files[name], 0o755, "Grafana execs {name}");
    }
    let module = std::fs::read_to_string(dist.join("module.js")).unwrap();
    assert!(module.contains(&format!("public/plugins/{ID}/")), "module.js is built for this plugin id");
    assert!(!std::fs::read_to_string(dist.join("README.md")).unwrap().contains("%VERSION%"));
}

/// The two shipped binaries: Grafana picks `<executable>_<GOOS>_<GOARCH>`.
const BINARIES: [(&str, &str); 2] = [("gpx_claudecode_linux_amd64", "x86-64"), ("gpx_claudecode_linux_arm64", "ARM aarch64")];

fn run_tool(program: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
#[ignore = "needs the package: scripts/package.sh, then cargo test --test package -- --ignored"]
fn binaries_are_static_and_nothing_needs_more_than_glibc_2_28() {
    let dist = dist();
    for (name, arch) in BINARIES {
        let path = dist.join(name);
        let file = run_tool("file", &[path.as_os_str()]);
        assert!(file.contains(arch), "{name} is not {arch}: {file}");
        assert!(file.contains("statically linked") || file.contains("static-pie linked"), "{name} is not static: {file}");
        assert!(!file.contains("interpreter"), "{name} names a dynamic loader: {file}");
        let ldd = run_tool("ldd", &[path.as_os_str()]);
        assert!(ldd.contains("not a dynamic executable") || ldd.contains("statically linked"), "{name}: ldd says {ldd}");
    }
    // any ELF file shipped that is linked dynamically after all: glibc 2.28 (RHEL 8, Debian 10) at most
    for rel in files(&dist).keys() {
        let path = dist.join(rel);
        let head = std::fs::read(&path).unwrap();
        if !head.starts_with(b"\x7fELF") {
            continue;
        }
        let symbols = run_tool("objdump", &["-T".as_ref(), path.as_os_str()]);
        let newest = symbols
            .split("GLIBC_")
            .skip(1)
            .filter_map(|rest| {
                let version: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
                let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
                Some((parts.next()?, parts.next().unwrap_or(0)))
            })
            .max();
        if let Some(newest) = newest {
            assert!(newest <= (2, 28), "dist/{rel} needs GLIBC_{}.{}", newest.0, newest.1);
        }
    }
}

/// What Grafana does with a plugin binary, and what Claude Code does with its receiver: the
/// handshake, CheckHealth, one run exported over gRPC and one over HTTP, exact numbers back.
async fn plugin_check(plugin: &Plugin) {
    assert!(plugin.handshake.starts_with("1|2|tcp|127.0.0.1:"), "{}", plugin.handshake);
    let health = plugin.check_health().await;
    assert_eq!(health.status, grafana_plugin_sdk::pluginv2::check_health_response::HealthStatus::Ok as i32, "{}", health.message);
    plugin.ingest_grpc(&run("tools", "grpc")).await;
    plugin.ingest_http(&run("tools", "http/protobuf")).await;
    // two sessions of the same scripted run: 0.048449 USD and 147 input tokens each
    let r = plugin.query(json!({"queryType": "stat", "measure": "cost"}), 1_700_000_000, 1_900_000_000).await;
    assert_eq!(r.error, "");
    assert!((r.frames[0].field("value").f64s()[0] - 2.0 * 0.048449).abs() < 1e-9, "{:?}", r.frames[0].field("value").f64s());
    let r = plugin.query(json!({"queryType": "cost_by_model", "format": "table"}), 1_700_000_000, 1_900_000_000).await;
    assert_eq!(r.error, "");
    assert_eq!(r.frames[0].field("model").strs(), ["claude-opus-4-8[1m]"]);
    assert_eq!(r.frames[0].field("input_tokens").i64s(), [2 * 147]);
    let r = plugin.query(json!({"queryType": "stat", "measure": "sessions"}), 1_700_000_000, 1_900_000_000).await;
    assert_eq!(r.frames[0].field("value").f64s(), [2.0]);
}

#[tokio::test]
#[ignore = "needs the package: scripts/package.sh, then cargo test --test package -- --ignored"]
async fn amd64_binary_runs_as_a_plugin_in_an_empty_root() {
    let binary = dist().join("gpx_claudecode_linux_amd64");
    assert!(binary.exists(), "{} missing (run scripts/package.sh)", binary.display());
    // a root holding the binary and a data dir, nothing else: no libc, no loader, no /etc, no
    // /proc, as in a distroless image (and more bare than Alpine)
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(&binary, root.path().join("gpx_claudecode_linux_amd64")).unwrap();
    std::fs::create_dir(root.path().join("data")).unwrap();
    let root_path = root.path().to_str().unwrap().to_string();
    // SAFETY: geteuid has no preconditions
    let wrapper: Vec<&str> =
        if unsafe { libc::geteuid() } == 0 { vec!["chroot", &root_path] } else { vec!["unshare", "--map-root-user", "--root", &root_path] };
    let plugin = Plugin::start_wrapped(&wrapper, Path::new("/gpx_claudecode_linux_amd64"), root, Path::new("/data")).await;
    plugin_check(&plugin).await;
    assert!(plugin.data_dir.path().join("data/claudecode.duckdb").exists(), "the store is inside the root");
}

#[tokio::test]
#[ignore = "needs the package: scripts/package.sh, then cargo test --test package -- --ignored"]
async fn arm64_binary_runs_as_a_plugin_under_qemu() {
    let binary = dist().join("gpx_claudecode_linux_arm64");
    assert!(binary.exists(), "{} missing (run scripts/package.sh)", binary.display());
    let qemu = std::env::var("QEMU_AARCH64").unwrap_or_else(|_| "qemu-aarch64".to_string());
    let data = tempfile::tempdir().unwrap();
    let seen_as = data.path().to_path_buf();
    let plugin = Plugin::start_wrapped(&[&qemu], &binary, data, &seen_as).await;
    plugin_check(&plugin).await;
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
