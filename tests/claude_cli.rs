//! End to end with the real Claude Code CLI (`../shared/claude-code/capture.sh`, driven headless
//! against a mock Anthropic API): it exports to our binary over gRPC, HTTP/protobuf and
//! HTTP/JSON, then its session is found through QueryData with the counts its README gives.
mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Plugin;
use serde_json::{json, Value};

fn capture_script() -> PathBuf {
    match std::env::var_os("CLAUDE_CODE_CAPTURE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/claude-code/capture.sh"),
    }
}

/// The version `capture.sh` installs when `CLAUDE_CODE_VERSION` is unset.
const DEFAULT_VERSION: &str = "2.1.197";
/// The newest version the capture kit describes (`TELEMETRY.md` §10).
const NEWEST_VERSION: &str = "2.1.332";

/// Runs the `tools` scenario against `endpoint`; returns the CLI's result JSON.
fn run_claude(protocol: &str, endpoint: &str, out: &std::path::Path) -> Value {
    run_claude_env(protocol, endpoint, out, &[])
}

/// The versions whose capture has succeeded in this process. capture.sh installs the CLI and
/// its venv on first use; two tests installing into one empty CC_CACHE_DIR at once break npm's
/// postinstall (seen on a cold machine), so a version's captures run one at a time until one
/// has succeeded.
static INSTALLED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The same with extra environment for the capture tool (e.g. the mock API's pace).
fn run_claude_env(protocol: &str, endpoint: &str, out: &std::path::Path, env: &[(&str, &str)]) -> Value {
    run_claude_version(DEFAULT_VERSION, protocol, endpoint, out, env, &[])
}

/// Runs the `tools` scenario with Claude Code `version`, extra environment for the capture
/// tool and extra `capture.py` options (e.g. `--env KEY=VALUE` for the CLI).
fn run_claude_version(version: &str, protocol: &str, endpoint: &str, out: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Value {
    let installed = INSTALLED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut first = if installed.iter().any(|v| v == version) {
        drop(installed);
        None
    } else {
        Some(installed)
    };
    // shared/ is read-only: capture.sh installs the CLI and its Python needs under CC_CACHE_DIR,
    // one CLI per directory, so other versions get a directory of their own (and reuse the venv).
    let base = std::env::var_os("CC_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache/claude-code-capture"));
    let cache = if version == DEFAULT_VERSION { base.clone() } else { base.join(format!("claude-code-{version}")) };
    std::fs::create_dir_all(&cache).unwrap();
    let mut command = Command::new("bash");
    command
        .arg(capture_script())
        .args(["tools", protocol])
        .arg(out)
        .args(args)
        .env("OTLP_ENDPOINT", endpoint)
        .env("CC_CACHE_DIR", &cache)
        .env("CLAUDE_CODE_VERSION", version)
        .envs(env.iter().copied());
    let venv_python = base.join(".venv/bin/python");
    if version != DEFAULT_VERSION && venv_python.exists() {
        command.env("PYTHON", venv_python);
    }
    let output = command.output().expect("run capture.sh");
    if let Some(installed) = first.as_mut() {
        if output.status.success() {
            installed.push(version.to_string());
        }
    }
    drop(first);
    assert!(
        output.status.success(),
        "capture.sh {version} {protocol} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = std::fs::read_to_string(out.join("claude-stdout.txt")).expect("claude-stdout.txt");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("claude stdout is not JSON ({e}): {stdout}"))
}

#[tokio::test]
async fn real_claude_code_cli_over_grpc_http_protobuf_and_http_json() {
    let plugin = Plugin::start().await;
    let work = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp();
    for protocol in ["grpc", "http/protobuf", "http/json"] {
        let endpoint = if protocol == "grpc" { format!("http://{}", plugin.grpc_addr) } else { format!("http://{}", plugin.http_addr) };
        let result = run_claude(protocol, &endpoint, &work.path().join(protocol.replace('/', "-")));
        let session = result["session_id"].as_str().expect("session_id in the CLI result").to_string();
        let cli_cost = result["total_cost_usd"].as_f64().expect("total_cost_usd");

        let r = plugin.query(json!({"refId": "A", "queryType": "sessions"}), now - 3600, now + 3600).await;
        assert_eq!(r.error, "", "{protocol}");
        let f = &r.frames[0];
        let row = f.row_where("session_id", &session);
        assert_eq!(f.field("api_calls").i64s()[row], 7, "{protocol}: 7 api_request events");
        assert_eq!(f.field("tool_calls").i64s()[row], 6, "{protocol}: 6 tool_result events");
        assert_eq!(f.field("prompts").i64s()[row], 1, "{protocol}");
        assert_eq!(f.field("commits").i64s()[row], 1, "{protocol}: 1 commit.count");
        assert_eq!(f.field("pull_requests").i64s()[row], 1, "{protocol}: 1 pull_request.count");
        assert!((f.field("cost_usd").f64s()[row] - cli_cost).abs() < 1e-9, "{protocol}: cost equals the CLI's total_cost_usd");
        assert_eq!(f.field("team").values[row], "platform", "{protocol}: resource attributes kept");

        let r = plugin.query(json!({"refId": "A", "queryType": "session_timeline", "sessionId": session}), now - 3600, now + 3600).await;
        let names = r.frames[0].field("event_name").strs();
        assert_eq!(names.iter().filter(|n| *n == "api_request").count(), 7, "{protocol}");
        assert_eq!(names.iter().filter(|n| *n == "tool_result").count(), 6, "{protocol}");
        let seq = r.frames[0].field("event_sequence").i64s();
        assert_eq!(seq, (0..seq.len() as i64).collect::<Vec<_>>(), "{protocol}: contiguous event.sequence");
    }
    let details = plugin.health_details().await;
    assert_eq!(details["store"]["sessions"], 3);
    assert!(details["store"]["spans"].as_i64().unwrap() > 0, "traces stored too");
}

/// The real CLI over gRPC and OTLP/HTTP protobuf against TLS, then mTLS: every session stored
/// with the CLI's own numbers; without its client certificate nothing is, and health says why.
/// Configured as Claude Code's monitoring documentation says (`OTEL_EXPORTER_OTLP_CERTIFICATE`,
/// `OTEL_EXPORTER_OTLP_CLIENT_KEY`, `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`), which its gRPC
/// exporter follows. Its OTLP/HTTP exporter (2.1.197 and 2.1.332 alike) ignores them and uses
/// the CLI's own fetch settings: `NODE_EXTRA_CA_CERTS` to trust the server and
/// `CLAUDE_CODE_CLIENT_CERT` / `CLAUDE_CODE_CLIENT_KEY` for its certificate (without them it sends
/// nothing at all, or no certificate); the configuration page's snippet sets both.
#[tokio::test]
async fn real_claude_code_cli_over_tls_and_mtls() {
    let pki = common::pki::Pki::new();
    let work = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp();
    let ca = format!("OTEL_EXPORTER_OTLP_CERTIFICATE={}", pki.path("server-ca.pem").display());
    let client_cert = format!("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE={}", pki.path("client.pem").display());
    let client_key = format!("OTEL_EXPORTER_OTLP_CLIENT_KEY={}", pki.path("client-key.pem").display());
    let extra_ca = format!("NODE_EXTRA_CA_CERTS={}", pki.path("server-ca.pem").display());
    let cc_cert = format!("CLAUDE_CODE_CLIENT_CERT={}", pki.path("client.pem").display());
    let cc_key = format!("CLAUDE_CODE_CLIENT_KEY={}", pki.path("client-key.pem").display());
    for mtls in [false, true] {
        let env = pki.env(mtls);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let plugin = Plugin::start_env(tempfile::tempdir().unwrap(), &env).await;
        for protocol in ["grpc", "http/protobuf"] {
            let address = if protocol == "grpc" { &plugin.grpc_addr } else { &plugin.http_addr };
            let port = address.rsplit(':').next().unwrap();
            let endpoint = if protocol == "grpc" { format!("https://localhost:{port}") } else { format!("https://127.0.0.1:{port}") };
            let mut args = vec!["--env", ca.as_str(), "--env", extra_ca.as_str()];
            if mtls {
                args.extend([
                    "--env",
                    client_cert.as_str(),
                    "--env",
                    client_key.as_str(),
                    "--env",
                    cc_cert.as_str(),
                    "--env",
                    cc_key.as_str(),
                ]);
            }
            let out = work.path().join(format!("{}-{mtls}", protocol.replace('/', "-")));
            let result = run_claude_version(DEFAULT_VERSION, protocol, &endpoint, &out, &[], &args);
            let session = result["session_id"].as_str().expect("session_id in the CLI result").to_string();
            let cli_cost = result["total_cost_usd"].as_f64().expect("total_cost_usd");
            let r = plugin.query(json!({"refId": "A", "queryType": "sessions"}), now - 3600, now + 3600).await;
            let f = &r.frames[0];
            let row = f.row_where("session_id", &session);
            assert_eq!(f.field("api_calls").i64s()[row], 7, "{protocol} mtls={mtls}");
            assert_eq!(f.field("tool_calls").i64s()[row], 6, "{protocol} mtls={mtls}");
            assert!((f.field("cost_usd").f64s()[row] - cli_cost).abs() < 1e-9, "{protocol} mtls={mtls}");
        }
        if mtls {
            // the same CLI without its client certificate: refused, nothing stored, health says why
            let before = plugin.health_details().await["store"]["events"].as_i64().unwrap();
            let endpoint = format!("https://localhost:{}", plugin.grpc_addr.rsplit(':').next().unwrap());
            run_claude_version(DEFAULT_VERSION, "grpc", &endpoint, &work.path().join("no-client-cert"), &[], &["--env", ca.as_str()]);
            let details = plugin.health_details().await;
            assert_eq!(details["store"]["events"].as_i64().unwrap(), before, "nothing stored without a client certificate");
            assert!(details["ingest"]["refusals"]["tls"]["count"].as_u64() > Some(0), "{details}");
            // the exporter retries, and its later attempts may end otherwise: the first names it
            let named = plugin.log_lines().iter().any(|l| l.contains("TLS refused") && l.contains("the client sent no certificate"));
            assert!(named, "{details}");
        }
    }
}

/// Claude Code 2.1.332 over all three protocols, in a git repository with an `origin` and
/// `OTEL_METRICS_INCLUDE_REPOSITORY=1`: the session, its repository and branch, the fleet and
/// the permission mode, each with the CLI's own numbers.
#[tokio::test]
async fn the_newest_claude_code_cli_over_every_protocol_with_its_repository() {
    let plugin = Plugin::start().await;
    let work = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut total_cost = 0.0;
    for protocol in ["grpc", "http/protobuf", "http/json"] {
        let endpoint = if protocol == "grpc" { format!("http://{}", plugin.grpc_addr) } else { format!("http://{}", plugin.http_addr) };
        let out = work.path().join(protocol.replace('/', "-"));
        let env = [("CAPTURE_GIT_REMOTE", "https://git.example.test/acme/widgets.git")];
        let result = run_claude_version(NEWEST_VERSION, protocol, &endpoint, &out, &env, &["--env", "OTEL_METRICS_INCLUDE_REPOSITORY=1"]);
        let session = result["session_id"].as_str().expect("session_id in the CLI result").to_string();
        let cli_cost = result["total_cost_usd"].as_f64().expect("total_cost_usd");
        total_cost += cli_cost;

        let r = plugin.query(json!({"refId": "A", "queryType": "sessions"}), now - 3600, now + 3600).await;
        assert_eq!(r.error, "", "{protocol}");
        let f = &r.frames[0];
        let row = f.row_where("session_id", &session);
        assert_eq!(f.field("api_calls").i64s()[row], 7, "{protocol}: 7 api_request events");
        assert_eq!(f.field("tool_calls").i64s()[row], 6, "{protocol}: 6 tool_result events");
        assert_eq!(f.field("commits").i64s()[row], 1, "{protocol}");
        assert_eq!(f.field("pull_requests").i64s()[row], 1, "{protocol}");
        assert!((f.field("cost_usd").f64s()[row] - cli_cost).abs() < 1e-9, "{protocol}: cost equals the CLI's total_cost_usd");
        assert_eq!(f.field("app_version").values[row], NEWEST_VERSION, "{protocol}");
        assert_eq!(f.field("repository").values[row], "widgets", "{protocol}");
        assert_eq!(f.field("branch").values[row], "master", "{protocol}");

        let q = json!({"refId": "A", "queryType": "tool_decisions", "sessions": [session]});
        let r = plugin.query(q, now - 3600, now + 3600).await;
        let f = &r.frames[0];
        let modes: Vec<String> = (0..f.rows())
            .filter(|&i| f.field("origin").values[i] == "tool_decision")
            .map(|i| f.field("permission_mode").strs()[i].clone())
            .collect();
        assert!(!modes.is_empty() && modes.iter().all(|m| m == "default"), "{protocol}: {modes:?}");
    }
    let r = plugin.query(json!({"refId": "A", "queryType": "repositories"}), now - 3600, now + 3600).await;
    let f = &r.frames[0];
    let row = f.row_where("repository", "widgets");
    assert_eq!(f.field("owner").values[row], "acme");
    assert_eq!(f.field("branch").values[row], "master");
    assert_eq!(f.field("sessions").i64s()[row], 3);
    assert_eq!(f.field("commits").i64s()[row], 3);
    assert!((f.field("cost_usd").f64s()[row] - total_cost).abs() < 1e-9, "the three CLIs' total_cost_usd");
    let r = plugin.query(json!({"refId": "A", "queryType": "fleet"}), now - 3600, now + 3600).await;
    let f = &r.frames[0];
    let row = f.row_where("app_version", NEWEST_VERSION);
    assert_eq!(f.field("provider").values[row], "firstParty");
    assert_eq!(f.field("sessions").i64s()[row], 3);
}

/// Records of each signal the plugin acknowledged, from its `export stored` log lines.
fn acknowledged(plugin: &Plugin) -> std::collections::BTreeMap<String, i64> {
    let mut out = std::collections::BTreeMap::new();
    for line in plugin.log_lines() {
        let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
        if v["@message"] == "export stored" {
            *out.entry(v["signal"].as_str().unwrap_or_default().to_string()).or_insert(0) += v["records"].as_i64().unwrap_or(0);
        }
    }
    out
}

/// The real CLI over gRPC while the plugin restarts mid-run on the same ports and file, by
/// SIGTERM (as Grafana stops a plugin) and by SIGKILL: everything the plugin acknowledged is
/// stored, nothing twice. An export sent while no process listens is refused by the operating
/// system and lost (Claude Code never re-sends it): the window is measured and printed.
#[tokio::test]
async fn the_real_cli_loses_nothing_the_plugin_acknowledged_across_a_restart() {
    for signal in ["TERM", "KILL"] {
        let (grpc, http) = (common::free_address(), common::free_address());
        let env = [("RUST_LOG", "warn,gpx_claudecode::ingest=debug")];
        let mut first = Plugin::launch_env(tempfile::tempdir().unwrap(), &grpc, &http, &env);
        first.wait_ready().await;
        let work = tempfile::tempdir().unwrap();
        let out = work.path().join("run");
        let endpoint = format!("http://{grpc}");
        // the mock API streams slowly, so the run lasts seconds and exports every half second
        let cli = std::thread::spawn(move || run_claude_env("grpc", &endpoint, &out, &[("MOCK_BLOCK_DELAY_S", "0.4")]));
        // restart once the first exports are in, while the CLI keeps exporting
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while acknowledged(&first).is_empty() {
            assert!(std::time::Instant::now() < deadline, "no export reached the plugin");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let down = std::time::Instant::now();
        let before = acknowledged(&first);
        let dir = if signal == "TERM" {
            assert!(first.terminate().await.success());
            first.kill9()
        } else {
            first.kill9()
        };
        let mut second = Plugin::launch_env(dir, &grpc, &http, &env);
        while std::net::TcpStream::connect(&grpc).is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        eprintln!("SIG{signal}: no listener on {grpc} for {:?} (exports sent then are refused by the OS)", down.elapsed());
        second.wait_ready().await;
        let result = tokio::task::spawn_blocking(move || cli.join().expect("CLI thread")).await.unwrap();
        let session = result["session_id"].as_str().expect("session_id").to_string();

        let after = acknowledged(&second);
        assert!(!after.is_empty(), "SIG{signal}: the restart came before the CLI's last exports");
        let sum = |signal: &str| before.get(signal).copied().unwrap_or(0) + after.get(signal).copied().unwrap_or(0);
        let store = &second.health_details().await["store"];
        let (events, spans) = (store["events"].as_i64().unwrap(), store["spans"].as_i64().unwrap());
        if signal == "TERM" {
            // a clean stop answers what it took: acknowledged = stored, exactly
            assert_eq!((events, spans), (sum("logs"), sum("traces")), "SIG{signal}");
        } else {
            // a killed plugin may have committed an export it could not acknowledge any more
            assert!(
                events >= sum("logs") && spans >= sum("traces"),
                "SIG{signal}: {events} events, {spans} spans, acknowledged {before:?} {after:?}"
            );
        }
        // nothing twice
        let r = second.query(json!({"queryType": "session_timeline", "sessionId": session}), 0, 4_000_000_000).await;
        let seq = r.frames.first().filter(|f| !f.fields.is_empty()).map(|f| f.field("event_sequence").i64s()).unwrap_or_default();
        // the run has 35 events; what is missing was sent while nothing listened, or in the
        // second or so gRPC clients back off after a refused connection
        eprintln!("SIG{signal}: {} of the run's 35 events stored; acknowledged before {before:?}, after {after:?}", seq.len());
        let mut unique = seq.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), seq.len(), "SIG{signal}: an event stored twice");
        let r = second
            .query(json!({"queryType": "sql", "rawSql": "SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans"}), 0, 4_000_000_000)
            .await;
        assert_eq!(r.frames[0].field("n").i64s(), r.frames[0].field("d").i64s(), "SIG{signal}: a span stored twice");
    }
}
