//! The terminal commands (`report`, `query`, `sql`, `export`, `status`) on the real captures:
//! first against a running plugin (which holds the DuckDB file, so the commands go through its
//! local API), then on the file once it has stopped; the same numbers both ways. The 2.1.197
//! tools run was captured 2026-11-21 21:32 UTC and the 2.1.332 multi run 2026-12-01 07:09 UTC,
//! so local midnight moves them between days, weeks and months.
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::test_fixtures::{run, run_v332};
use common::{binary, Plugin};
use serde_json::{json, Value};

const FROM: i64 = 1_700_000_000;
const TO: i64 = 1_900_000_000;
/// The tools run's cost and the multi run's, as Claude Code reported them.
const TOOLS_COST: f64 = 0.048449;
const MULTI_COST: f64 = 0.0304808;

fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("GF_PLUGIN_INGEST_TOKEN")
        .env("NO_COLOR", "1")
        .output()
        .expect("run gpx_claudecode")
}

fn ok(dir: &Path, args: &[&str]) -> (String, String) {
    let out = cli(dir, args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    (stdout, stderr)
}

fn json_of(dir: &Path, args: &[&str]) -> (Value, String) {
    let (stdout, stderr) = ok(dir, args);
    (serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}")), stderr)
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap_or(f64::NAN) - b).abs() < 1e-9
}

fn column<'a>(rows: &'a Value, name: &str) -> Vec<&'a Value> {
    rows.as_array().unwrap().iter().map(|r| &r[name]).collect()
}

const RANGE: [&str; 4] = ["--since", "2026-11-01", "--until", "2026-12-31"];

fn report(dir: &Path, kind: &str, extra: &[&str]) -> (Value, String) {
    let mut args = vec!["report", kind, "--json"];
    args.extend(RANGE);
    args.extend(extra);
    json_of(dir, &args)
}

/// Every report with exact numbers; `source` is where the command must say it read from.
fn check_reports(dir: &Path, source: &str) -> Value {
    let (daily, stderr) = report(dir, "daily", &["--timezone", "UTC"]);
    assert_eq!(daily["source"], source, "{stderr}");
    assert!(
        stderr.contains(if source == "file" { "read from the file" } else { "read from the running process at http://127.0.0.1:" }),
        "{stderr}"
    );
    assert_eq!((daily["report"].as_str(), daily["timezone"].as_str()), (Some("daily"), Some("UTC")));
    let rows = &daily["rows"];
    assert_eq!(column(rows, "period"), [&json!("2026-11-21"), &json!("2026-12-01")]);
    assert_eq!(column(rows, "api_requests"), [&json!(7), &json!(7)]);
    assert_eq!(column(rows, "sessions"), [&json!(1), &json!(1)]);
    assert!(close(&rows[0]["cost_usd"], TOOLS_COST));
    assert!(close(&rows[1]["cost_usd"], MULTI_COST));
    assert_eq!(rows[0]["input_tokens"], 147);
    assert_eq!(rows[0]["output_tokens"], 306);
    assert_eq!(rows[0]["cache_read_tokens"], 35328);
    assert_eq!(rows[0]["cache_creation_tokens"], 3584);
    assert_eq!(rows[0]["total_tokens"], 39365);
    assert_eq!(daily["totals"]["api_requests"], 14);
    assert!(close(&daily["totals"]["cost_usd"], TOOLS_COST + MULTI_COST));

    // local midnight: Tokyo is 9 h ahead (the 21st's evening is the 22nd), Los Angeles 8 h behind
    // (07:09 UTC on 1 December is 23:09 on 30 November)
    let periods = |v: &Value| column(&v["rows"], "period").iter().map(|p| p.as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(periods(&report(dir, "daily", &["--timezone", "Asia/Tokyo"]).0), ["2026-11-22", "2026-12-01"]);
    assert_eq!(periods(&report(dir, "daily", &["--timezone", "America/Los_Angeles"]).0), ["2026-11-21", "2026-11-30"]);
    assert_eq!(periods(&report(dir, "monthly", &["--timezone", "UTC"]).0), ["2026-11", "2026-12"]);
    let la = report(dir, "monthly", &["--timezone", "America/Los_Angeles"]).0;
    assert_eq!(periods(&la), ["2026-11"]);
    assert_eq!(la["rows"][0]["api_requests"], 14);
    assert_eq!(periods(&report(dir, "weekly", &["--timezone", "Asia/Tokyo"]).0), ["2026-11-16", "2026-11-30"]);

    // a row per model under each day, adding up to the day
    let split = report(dir, "daily", &["--timezone", "UTC", "--breakdown"]).0;
    for row in split["rows"].as_array().unwrap() {
        let models = row["breakdown"].as_array().expect("breakdown");
        assert!(!models.is_empty() && models.iter().all(|m| m["model"].is_string()), "{row}");
        let calls: i64 = models.iter().map(|m| m["api_requests"].as_i64().unwrap()).sum();
        assert_eq!(calls, row["api_requests"].as_i64().unwrap(), "{row}");
        let cost: f64 = models.iter().map(|m| m["cost_usd"].as_f64().unwrap()).sum();
        assert!((cost - row["cost_usd"].as_f64().unwrap()).abs() < 1e-9, "{row}");
    }
    // by a group: the team both runs were captured with (OTEL_RESOURCE_ATTRIBUTES team=platform)
    let teams = report(dir, "daily", &["--timezone", "UTC", "--by", "team"]).0;
    assert_eq!(column(&teams["rows"], "team"), [&json!("platform"), &json!("platform")]);

    let sessions = report(dir, "sessions", &["--timezone", "UTC"]).0;
    assert_eq!(column(&sessions["rows"], "api_requests"), [&json!(7), &json!(7)]);
    assert!(sessions["rows"][0]["first_seen"].as_str().is_some_and(|t| t.starts_with("2026-11-21T21:32:5")), "{sessions}");
    let models = report(dir, "models", &[]).0;
    let calls: i64 = column(&models["rows"], "api_requests").iter().map(|c| c.as_i64().unwrap()).sum();
    assert_eq!((calls, models["totals"]["api_requests"].as_i64()), (14, Some(14)));
    let projects = report(dir, "projects", &[]).0;
    assert_eq!(projects["totals"]["api_requests"], 14);

    let tools = report(dir, "tools", &[]).0;
    let bash = tools["rows"].as_array().unwrap().iter().find(|r| r["tool_name"] == "Bash").expect("Bash in the tools report");
    assert!(bash["calls"].as_i64() > Some(0), "{bash}");
    let windows = report(dir, "windows", &[]).0;
    assert_eq!(column(&windows["rows"], "api_calls").iter().map(|c| c.as_f64().unwrap()).sum::<f64>(), 14.0);

    // the table: the rows and columns a terminal shows
    let (table, _) = ok(dir, &["report", "daily", "--timezone", "UTC", "--since", "2026-11-01", "--until", "2026-12-31"]);
    for expected in [
        "Date",
        "Models",
        "Calls",
        "Input",
        "Output",
        "Cache write",
        "Cache read",
        "Total tokens",
        "Cost",
        "List cost",
        "2026-11-21",
        "2026-12-01",
        "Total",
        "$0.0484",
        "39,365",
    ] {
        assert!(table.contains(expected), "{expected:?} missing in\n{table}");
    }
    assert_eq!(table.lines().filter(|l| l.contains("2026-1")).count(), 2, "{table}");
    daily
}

fn check_query_and_sql(dir: &Path) {
    let range = ["--from", "1700000000000", "--to", "1900000000000"];
    let mut args = vec!["query", r#"{"queryType": "stat", "measure": "api_requests", "source": "events"}"#, "--format", "json"];
    args.extend(range);
    let (stat, _) = json_of(dir, &args);
    assert_eq!(stat["frames"][0]["data"]["values"][0][0], 14.0);
    assert_eq!(stat["frames"][0]["schema"]["fields"][0]["name"], "value");
    let mut args =
        vec!["sql", "SELECT count(*) AS n FROM events WHERE $__timeFilter(time) AND event_name = 'api_request'", "--format", "csv"];
    args.extend(range);
    assert_eq!(ok(dir, &args).0, "n\n14\n");
    let mut args = vec!["query", r#"{"queryType": "cost_by_model", "source": "events", "format": "table"}"#];
    args.extend(range);
    let (table, _) = ok(dir, &args);
    assert!(table.contains("model") && table.contains("cost_usd") && table.contains("claude-opus-4-8"), "{table}");

    // what is refused says why
    let refused = cli(dir, &["sql", "DELETE FROM events"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("read-only"), "{}", String::from_utf8_lossy(&refused.stderr));
    let bad = cli(dir, &["query", "{not json"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("not JSON"));
    let unknown = cli(dir, &["query", r#"{"queryType": "stat", "measure": "money"}"#]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success() && stderr.contains("money") && stderr.contains("list_cost"), "{stderr}");
    let zone = cli(dir, &["report", "daily", "--timezone", "Mars/Olympus"]);
    assert!(String::from_utf8_lossy(&zone.stderr).contains("Europe/Berlin"));
    let before_1970 = cli(dir, &["query", r#"{"queryType": "stat", "measure": "cost"}"#, "--from=-1000"]);
    assert!(
        String::from_utf8_lossy(&before_1970.stderr).contains("between 1970 and 9999"),
        "{}",
        String::from_utf8_lossy(&before_1970.stderr)
    );
    let by = cli(dir, &["report", "sessions", "--by", "model"]);
    assert!(String::from_utf8_lossy(&by.stderr).contains("--by applies to the daily, weekly and monthly"));
}

/// Records of one session per table, and its cost, as Grafana's raw SQL reads them.
async fn session_counts(plugin: &Plugin, session: &str) -> Vec<f64> {
    let sql = format!(
        "SELECT (SELECT count(*) FROM events WHERE session_id = '{session}') AS e, (SELECT count(*) FROM metric_points WHERE session_id = '{session}') AS m, \
         (SELECT count(*) FROM spans WHERE session_id = '{session}') AS s, (SELECT sum(cost_usd) FROM events WHERE session_id = '{session}') AS c, \
         (SELECT sum(increment) FROM metric_points WHERE session_id = '{session}' AND metric_name = 'claude_code.cost.usage') AS mc"
    );
    let r = plugin.query(json!({"refId": "A", "queryType": "sql", "format": "table", "rawSql": sql}), FROM, TO).await;
    ["e", "m", "s", "c", "mc"].iter().map(|c| r.frames[0].field(c).f64s()[0]).collect()
}

#[tokio::test]
async fn reports_queries_and_exports_against_the_running_plugin_and_on_the_file() {
    // the local API's callers read as Viewers: content for Viewers, so that both ways give the
    // same records (tests/content.rs: hidden by default)
    let mut plugin = Plugin::start_env(tempfile::tempdir().unwrap(), &[("GF_PLUGIN_CONTENT_ROLE", "Viewer")]).await;
    let mut fixtures = run("tools", "http/protobuf");
    fixtures.extend(run_v332("multi", "http/protobuf"));
    plugin.ingest_http(&fixtures).await;
    let dir = plugin.data_dir.path().to_path_buf();

    let out = cli(&dir, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["running"], true);
    assert!(status["details"]["store"]["events"].as_i64() > Some(0), "{status}");
    assert_eq!(status["details"]["listeners"]["http"]["address"], plugin.http_addr.as_str());
    assert!(status["message"].as_str().unwrap().contains("sessions"), "{status}");

    let through_plugin = check_reports(&dir, "process");
    check_query_and_sql(&dir);

    // the tools session exported, then sent to a second plugin as any OTLP client would
    let r = plugin
        .query(json!({"refId": "A", "queryType": "sql", "format": "table", "rawSql": "SELECT session_id AS s FROM events WHERE app_version = '2.1.197' LIMIT 1"}), FROM, TO)
        .await;
    let session = r.frames[0].field("s").strs()[0].clone();
    let (otlp, stderr) = ok(&dir, &["export", "--session", &session]);
    assert!(stderr.contains("exported"), "{stderr}");
    let (jsonl, _) = ok(&dir, &["export", "--session", &session, "--format", "jsonl"]);
    let (csv, _) = ok(&dir, &["export", "--session", &session, "--format", "csv"]);
    let original = session_counts(&plugin, &session).await;
    assert!(original[0] > 0.0 && original[1] > 0.0 && original[2] > 0.0, "{original:?}");
    assert_eq!(jsonl.lines().count() as f64, original[0] + original[1] + original[2]);
    assert_eq!(csv.lines().count() as f64, original[0] + original[1] + original[2] + 1.0);
    assert!(csv.starts_with("signal,time,name,session_id,value,trace_id,span_id,attributes,resource\n"));

    let copy = Plugin::start_env(tempfile::tempdir().unwrap(), &[("GF_PLUGIN_CONTENT_ROLE", "Viewer")]).await;
    let client = reqwest::Client::new();
    assert_eq!(otlp.lines().count(), 3, "one request per signal");
    for line in otlp.lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        let signal =
            ["resourceLogs", "resourceMetrics", "resourceSpans"].iter().position(|k| doc.get(k).is_some()).expect("an OTLP request");
        let path = ["logs", "metrics", "traces"][signal];
        let resp = client
            .post(format!("http://{}/v1/{path}", copy.http_addr))
            .header("content-type", "application/json")
            .body(line.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        assert!(!body.contains("rejected"), "{path}: {body}");
    }
    let copied = session_counts(&copy, &session).await;
    assert_eq!(copied[..3], original[..3], "events, metric points, spans");
    assert!((copied[3] - TOOLS_COST).abs() < 1e-9 && (original[3] - TOOLS_COST).abs() < 1e-9, "{copied:?}");
    assert!((copied[4] - original[4]).abs() < 1e-9, "{copied:?} {original:?}");
    // the same export from the copy: nothing lost or changed on the way
    let (again, _) = ok(copy.data_dir.path(), &["export", "--session", &session, "--format", "jsonl"]);
    let strip = |t: &str| -> Vec<Value> {
        t.lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("observedTimeUnixNano");
                v
            })
            .collect()
    };
    let (again, before) = (strip(&again), strip(&jsonl));
    assert_eq!(again.len(), before.len());
    for (a, b) in again.iter().zip(&before) {
        assert_eq!(a, b, "a record changed on the way");
    }

    // stopped: the same commands open the file, with the same numbers
    assert!(plugin.terminate().await.success());
    let on_file = check_reports(&dir, "file");
    for key in ["rows", "totals"] {
        assert_eq!(on_file[key], through_plugin[key]);
    }
    check_query_and_sql(&dir);
    let (otlp_from_file, _) = ok(&dir, &["export", "--session", &session]);
    assert_eq!(otlp_from_file, otlp);
    let out = cli(&dir, &["status"]);
    assert_eq!(out.status.code(), Some(3), "not running");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Receiver: not running"));
    let unknown = cli(&dir, &["export", "--session", "no-such-session"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("report sessions"));
}

#[tokio::test]
async fn without_data_or_receiver_the_error_names_the_fix() {
    let empty = tempfile::tempdir().unwrap();
    let free = common::free_address();
    let out = Command::new(binary())
        .args(["report", "daily", "--data-dir"])
        .arg(empty.path().join("nothing"))
        .env("GF_PLUGIN_OTLP_HTTP_LISTEN", &free)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no data in") && stderr.contains("gpx_claudecode serve") && stderr.contains("--endpoint"), "{stderr}");
    assert!(!empty.path().join("nothing").exists(), "a report creates no data directory");
}

/// With an ingest token the local API wants it, from loopback too; the token opens it.
#[tokio::test]
async fn the_local_api_wants_the_ingest_token_when_one_is_set() {
    let plugin = Plugin::start_env(tempfile::tempdir().unwrap(), &[("GF_PLUGIN_INGEST_TOKEN", "s3cret")]).await;
    plugin.ingest_http_as(&run("tools", "http/protobuf"), Some("s3cret")).await;
    let dir = plugin.data_dir.path();
    let refused = cli(dir, &["report", "daily"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("401") && stderr.contains("--token"), "{stderr}");
    let out = Command::new(binary())
        .args(["report", "daily", "--json", "--since", "2026-11-01", "--until", "2026-11-30", "--timezone", "UTC", "--data-dir"])
        .arg(dir)
        .env("GF_PLUGIN_INGEST_TOKEN", "s3cret")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["rows"][0]["api_requests"], 7);
}

/// `serve` keeps the file to itself (it once opened it twice, which let go of DuckDB's lock):
/// a command finds it running and asks it.
#[tokio::test]
async fn serve_holds_the_file_and_answers_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http) = (common::free_address(), common::free_address());
    let mut serve = Command::new(binary())
        .args(["serve", "--grpc", &grpc, "--http", &http, "--data-dir"])
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !dir.path().join("receiver.json").exists() || !dir.path().join("claudecode.duckdb").exists() {
        assert!(std::time::Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // the store opens after the listeners bind
    let mut out = cli(dir.path(), &["status"]);
    while out.status.code() != Some(0) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        out = cli(dir.path(), &["status"]);
    }
    let _ = serve.kill();
    let _ = serve.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("local API at http://{http}")), "{stdout}");
}

#[test]
fn every_command_shows_an_example_in_its_help() {
    for command in ["serve", "import", "prices", "statusline", "report", "query", "sql", "export", "status", "bench"] {
        let out = Command::new(binary()).args([command, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && help.contains("Example"), "{command} --help:\n{help}");
        assert!(help.contains(&format!("gpx_claudecode {command}")), "{command} --help shows no use of it:\n{help}");
    }
}
