//! `gpx_claudecode import` of the real transcripts in `../shared/claude-code/transcripts`, into
//! the file and through a running plugin, against the telemetry of the same runs; and
//! `gpx_claudecode statusline` with a status as Claude Code documents it.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{binary, Plugin};
use serde_json::{json, Value};

const FROM: i64 = 1_790_000_000;
const TO: i64 = 1_900_000_000;

fn transcripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/claude-code/transcripts")
}

fn folders() -> Vec<String> {
    let mut f: Vec<String> = std::fs::read_dir(transcripts())
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("expected.json").exists())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    f.sort();
    f
}

fn expected(folder: &str) -> Value {
    serde_json::from_slice(&std::fs::read(transcripts().join(folder).join("expected.json")).unwrap()).unwrap()
}

/// The test's own price table, USD per million tokens: input, output, cache read, 5m write, 1h write.
fn price(model: &str) -> [f64; 5] {
    match model {
        "claude-opus-5-5" => [4.0, 20.0, 0.2, 5.0, 8.0],
        "claude-haiku-5-5" => [0.1, 0.5, 0.01, 0.125, 0.2],
        "claude-opus-4-8" => [5.0, 25.0, 0.5, 6.25, 10.0],
        "claude-haiku-4-5-20251001" => [1.0, 5.0, 0.1, 1.25, 2.0],
        other => panic!("no test price for {other}"),
    }
}

/// A call's list cost by hand: cache writes without a 1-hour share are 5-minute writes.
fn list_cost(call: &Value) -> f64 {
    let p = price(call["model"].as_str().unwrap());
    let n = |k: &str| call[k].as_f64().unwrap();
    let one_hour = n("cache_creation_1h");
    (n("input_tokens") * p[0]
        + n("output_tokens") * p[1]
        + n("cache_read_input_tokens") * p[2]
        + (n("cache_creation_input_tokens") - one_hour) * p[3]
        + one_hour * p[4])
        / 1e6
}

fn import(args: &[&str]) -> Value {
    let out = Command::new(binary()).arg("import").arg("--json").args(args).env_remove("GF_PLUGIN_INGEST_TOKEN").output().unwrap();
    assert!(out.status.success(), "import failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Every fixture run imported into the file: exact calls, tokens and list cost per session,
/// equal to Claude Code's own `total_cost_usd`; a second import adds nothing; a grown file adds
/// only its new calls; a garbage line is reported with file and line.
#[tokio::test]
async fn import_into_the_file_counts_every_call_once() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut all_calls = 0;
    for folder in folders() {
        copy_tree(&transcripts().join(&folder).join("projects"), &work.path().join(&folder));
        all_calls += expected(&folder)["sessions"]
            .as_object()
            .unwrap()
            .values()
            .map(|s| s["transcript_calls"].as_array().unwrap().len())
            .sum::<usize>();
    }
    assert_eq!(all_calls, 50);
    // the multi run's transcript, first only up to its third call
    let multi = transcripts().join("multi-2.1.332/projects");
    let multi_file = common::test_fixtures::jsonl_files(&multi).remove(0);
    let grown = work.path().join("grown/session.jsonl");
    std::fs::create_dir_all(grown.parent().unwrap()).unwrap();
    let full = std::fs::read_to_string(&multi_file).unwrap();
    let lines: Vec<&str> = full.lines().collect();
    let third_call_end = {
        let mut requests = Vec::new();
        let mut end = 0;
        for (i, l) in lines.iter().enumerate() {
            let v: Value = serde_json::from_str(l).unwrap();
            if v["type"] == "assistant" {
                let r = v["requestId"].as_str().unwrap().to_string();
                if !requests.contains(&r) {
                    requests.push(r);
                }
                if requests.len() == 3 {
                    end = i + 1;
                }
            }
        }
        end
    };
    // a truncated last line too, as a file being written looks
    std::fs::write(&grown, format!("{}\n{}", lines[..third_call_end].join("\n"), &lines[third_call_end][..20])).unwrap();

    let dir = data.path().to_str().unwrap();
    let first = import(&["--data-dir", dir, work.path().to_str().unwrap()]);
    // the grown copy's 3 calls are the multi run's own: known within the same import
    assert_eq!(first["calls"], all_calls);
    assert_eq!(first["new"], all_calls);
    assert_eq!(first["synthetic_lines"], 1, "the exhaust run's API error");
    let skipped = first["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0]["file"].as_str().unwrap().ends_with("grown/session.jsonl"));
    assert_eq!(skipped[0]["line"], third_call_end + 1);
    assert!(skipped[0]["reason"].as_str().unwrap().contains("truncated"));

    let again = import(&["--data-dir", dir, work.path().to_str().unwrap()]);
    assert_eq!((again["new"].as_u64(), again["known"].as_u64()), (Some(0), Some(all_calls as u64)));

    // the grown file alone, as a new session (another id): 3 calls, then the rest of them
    let renamed = full.replace("9c6406e8", "9c6406e9");
    let renamed_lines: Vec<&str> = renamed.lines().collect();
    let solo = tempfile::tempdir().unwrap();
    let solo_file = solo.path().join("s.jsonl");
    std::fs::write(&solo_file, renamed_lines[..third_call_end].join("\n")).unwrap();
    assert_eq!(import(&["--data-dir", dir, solo_file.to_str().unwrap()])["new"], 3);
    std::fs::write(&solo_file, &renamed).unwrap();
    let rest = import(&["--data-dir", dir, solo_file.to_str().unwrap()]);
    assert_eq!((rest["new"].as_u64(), rest["known"].as_u64()), (Some(4), Some(3)));

    let plugin = Plugin::start_with(data, &common::free_address(), &common::free_address()).await;
    let sessions = plugin.query(json!({"queryType": "sessions"}), FROM, TO).await;
    let s = &sessions.frames[0];
    for folder in folders() {
        let e = expected(&folder);
        for (id, session) in e["sessions"].as_object().unwrap() {
            let calls = session["transcript_calls"].as_array().unwrap();
            if calls.is_empty() {
                continue;
            }
            let row = s.row_where("session_id", id);
            let t = &session["transcript_totals"];
            let tokens = ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"]
                .iter()
                .map(|k| t[k].as_i64().unwrap())
                .sum::<i64>();
            assert_eq!(s.field("api_calls").i64s()[row], calls.len() as i64, "{folder}");
            assert_eq!(s.field("tokens").i64s()[row], tokens, "{folder}");
            assert_eq!(s.field("input_tokens").i64s()[row], t["input_tokens"].as_i64().unwrap(), "{folder}");
            let by_hand: f64 = calls.iter().map(list_cost).sum();
            let claude_code = e["claude_stdout"]["total_cost_usd"].as_f64().unwrap();
            assert!((s.field("list_cost_usd").f64s()[row] - by_hand).abs() < 1e-12, "{folder}");
            // imported history has no estimate of Claude Code's: its cost is the list price
            assert!((s.field("cost_usd").f64s()[row] - by_hand).abs() < 1e-12, "{folder}");
            assert!((by_hand - claude_code).abs() < 1e-9, "{folder}: list {by_hand} vs Claude Code's {claude_code}");
            assert_eq!(s.field("data_source").strs()[row], "transcript", "{folder}");
        }
    }
    // the source shows as a key, and the subagent's calls as subagent calls
    let by_source = plugin
        .query(
            json!({"queryType": "breakdown", "measure": "api_requests", "source": "events", "groupBy": "data_source", "format": "table"}),
            FROM,
            TO,
        )
        .await;
    assert_eq!(by_source.frames[0].field("data_source").strs(), ["transcript"]);
    assert_eq!(by_source.frames[0].field("api_requests").i64s(), [all_calls as i64 + 7]);
    let classes =
        plugin.query(json!({"queryType": "breakdown", "measure": "api_requests", "groupBy": "query_class", "format": "table", "sessions": ["6fa859a7-0176-4ea5-a4a8-0e74173978d7"]}), FROM, TO).await;
    assert_eq!(classes.frames[0].field("query_class").strs(), ["main", "subagent"]);
    assert_eq!(classes.frames[0].field("api_requests").i64s(), [2, 2]);
}

/// While the plugin holds the file the import goes through its receiver, authenticated; a call
/// that arrived as telemetry first is known, one imported first is replaced by its telemetry:
/// each counts once, whichever came first.
#[tokio::test]
async fn import_through_the_running_plugin_and_telemetry_count_each_call_once() {
    let token = "import-test-token";
    let plugin = Plugin::start_env(tempfile::tempdir().unwrap(), &[("GF_PLUGIN_INGEST_TOKEN", token)]).await;
    let dir = plugin.data_dir.path().to_str().unwrap().to_string();
    let endpoint = format!("http://{}", plugin.http_addr);
    let run = |folder: &str, token: Option<&str>| {
        let path = transcripts().join(folder).join("projects");
        let mut c = Command::new(binary());
        c.args(["import", "--json", "--data-dir", &dir, "--endpoint", &endpoint, path.to_str().unwrap()])
            .env_remove("GF_PLUGIN_INGEST_TOKEN");
        if let Some(t) = token {
            c.args(["--token", t]);
        }
        c.output().unwrap()
    };
    let refused = run("tools-2.1.332", None);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--token"), "{}", String::from_utf8_lossy(&refused.stderr));

    // telemetry first, then the transcript: nothing new
    let headers_ok = |o: &std::process::Output| -> Value {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    plugin.ingest_http_as(&common::test_fixtures::transcript_run("subagent-2.1.332"), Some(token)).await;
    let out = headers_ok(&run("subagent-2.1.332", Some(token)));
    assert_eq!((out["new"].as_u64(), out["known"].as_u64()), (Some(0), Some(4)));
    assert!(out["into"].as_str().unwrap().ends_with("/v1/transcripts"));
    // the transcript first, then the telemetry: the telemetry's rows are kept
    let out = headers_ok(&run("tools-2.1.332", Some(token)));
    assert_eq!(out["new"], 7);
    let tools_session = "27c51e85";
    let calls = |r: &common::QueryResult| -> Vec<(String, i64, f64, String)> {
        let f = &r.frames[0];
        (0..f.rows())
            .map(|i| {
                (
                    f.field("session_id").strs()[i].clone(),
                    f.field("api_calls").i64s()[i],
                    f.field("cost_usd").f64s()[i],
                    f.field("data_source").strs()[i].clone(),
                )
            })
            .collect()
    };
    let before = calls(&plugin.query(json!({"queryType": "sessions"}), FROM, TO).await);
    let tools = before.iter().find(|c| c.0.starts_with(tools_session)).unwrap();
    assert_eq!((tools.1, tools.3.as_str()), (7, "transcript"));
    plugin.ingest_http_as(&common::test_fixtures::transcript_run("tools-2.1.332"), Some(token)).await;
    let after = calls(&plugin.query(json!({"queryType": "sessions"}), FROM, TO).await);
    let tools = after.iter().find(|c| c.0.starts_with(tools_session)).unwrap();
    assert_eq!((tools.1, tools.3.as_str()), (7, "telemetry"), "{after:?}");
    assert!((tools.2 - 0.0244096).abs() < 1e-9, "Claude Code's own cost");
    let sub = after.iter().find(|c| c.0.starts_with("6fa859a7")).unwrap();
    assert_eq!(sub.1, 4);
    let requests = plugin.query(json!({"queryType": "stat", "measure": "api_requests"}), FROM, TO).await;
    assert_eq!(requests.frames[0].field("value").i64s(), [11]);

    // the statusline through the plugin: records the plan's figures, prints today's cost
    let mut child = Command::new(binary())
        .args(["statusline", "--data-dir", &dir, "--endpoint", &endpoint, "--token", token])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(common::STATUS.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && line.starts_with("Opus 5.5 · session $0.02 · today $"),
        "{line} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(line.contains("5h limit 42%") && line.contains("7d limit 12%"), "{line}");
    let now = chrono::Utc::now().timestamp();
    let limits = plugin.query(json!({"queryType": "usage_windows", "output": "limits"}), now - 3600, now + 60).await;
    let f = &limits.frames[0];
    let five_hour =
        f.fields.iter().find(|x| x.labels.get("window").and_then(Value::as_str) == Some("five_hour")).expect("five_hour series");
    assert_eq!(five_hour.f64s().iter().copied().filter(|v| v.is_finite()).collect::<Vec<_>>(), [42.5]);
}
