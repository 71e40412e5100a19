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

/// Runs the `tools` scenario against `endpoint`; returns the CLI's result JSON.
fn run_claude(protocol: &str, endpoint: &str, out: &std::path::Path) -> Value {
    // shared/ is read-only: capture.sh installs the CLI and its Python needs under CC_CACHE_DIR.
    let cache = std::env::var_os("CC_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache/claude-code-capture"));
    std::fs::create_dir_all(&cache).unwrap();
    let output = Command::new("bash")
        .arg(capture_script())
        .args(["tools", protocol])
        .arg(out)
        .env("OTLP_ENDPOINT", endpoint)
        .env("CC_CACHE_DIR", &cache)
        .output()
        .expect("run capture.sh");
    assert!(
        output.status.success(),
        "capture.sh {protocol} failed: {}\n{}",
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
