//! Every query type against the fixtures, with exact numbers.
use chrono::DateTime;
use serde_json::{json, Value};

// `wide`: over the whole fixture period (the 2.1.332 captures are a week after 2.1.197's)
use super::testing::{columns, frames, hour, wide};
use super::QueryContext;
use crate::ingest::testing::state_with;
use crate::test_fixtures::run as fixture_run;

async fn one(state: &crate::app::AppState, q: Value) -> std::collections::BTreeMap<String, Vec<Value>> {
    let fs = frames(state, q.clone(), hour()).await.unwrap_or_else(|e| panic!("{q}: {e}"));
    assert_eq!(fs.len(), 1, "{q}");
    columns(&fs[0])
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn sum(values: &[Value]) -> f64 {
    values.iter().filter_map(Value::as_f64).sum()
}

#[tokio::test]
async fn stats_have_exact_fixture_numbers_from_metrics_and_events() {
    let (state, _dir) = state_with(&fixture_run("tools", "grpc")).await;
    let expected = [
        ("sessions", 1.0),
        ("active_sessions", 1.0),
        ("cost", 0.048449),
        ("tokens", 39365.0),
        ("input_tokens", 147.0),
        ("output_tokens", 306.0),
        ("cache_read_tokens", 35328.0),
        ("cache_creation_tokens", 3584.0),
        ("cache_hit_ratio", 35328.0 / (147.0 + 35328.0 + 3584.0)),
        ("active_time", 1.199),
        ("lines_added", 7.0),
        ("lines_removed", 1.0),
        ("commits", 1.0),
        ("pull_requests", 1.0),
        ("api_requests", 7.0),
        ("api_errors", 0.0),
        ("api_error_rate", 0.0),
        ("retries_exhausted", 0.0),
        ("refusals", 0.0),
        ("tool_calls", 6.0),
        ("tool_failures", 0.0),
        ("prompts", 1.0),
        ("events", 35.0),
    ];
    for (measure, value) in expected {
        for source in ["metrics", "events"] {
            let c = one(&state, json!({"queryType": "stat", "measure": measure, "source": source})).await;
            assert_eq!(c.len(), 1, "{measure}: one numeric field, alertable");
            assert!(close(f(&c["value"][0]), value), "{measure}/{source}: {:?} != {value}", c["value"]);
        }
    }
    // the exhaust run failed every request
    let (state, _dir) = state_with(&fixture_run("exhaust", "http/json")).await;
    for (measure, value) in [("api_errors", 1.0), ("api_error_rate", 1.0), ("retries_exhausted", 1.0), ("api_requests", 0.0), ("cost", 0.0)]
    {
        let c = one(&state, json!({"queryType": "stat", "measure": measure})).await;
        assert!(close(f(&c["value"][0]), value), "exhaust {measure}: {:?}", c["value"]);
    }
}

#[tokio::test]
async fn stat_compares_with_the_previous_period() {
    let (state, _dir) = state_with(&fixture_run("tools", "http/protobuf")).await;
    // The fixture lies just before this range: everything is in the previous period.
    let after = QueryContext {
        from: DateTime::from_timestamp(1_795_296_800, 0).unwrap(),
        to: DateTime::from_timestamp(1_795_300_400, 0).unwrap(),
        ..hour()
    };
    let q = json!({"queryType": "stat", "measure": "cost", "compare": "previous_period"});
    let c = columns(&frames(&state, q, after).await.unwrap()[0]);
    assert_eq!(f(&c["value"][0]), 0.0);
    assert!(close(f(&c["previous"][0]), 0.048449));
    assert!(close(f(&c["change"][0]), -0.048449));
    assert!(close(f(&c["change_ratio"][0]), -1.0));
    // one output only: a numeric table alert rules accept
    let q = json!({"queryType": "stat", "measure": "cost", "compare": "previous_period", "output": "change_ratio"});
    let c = columns(&frames(&state, q, after).await.unwrap()[0]);
    assert_eq!(c.keys().collect::<Vec<_>>(), ["change_ratio"]);
    let e = frames(&state, json!({"queryType": "stat", "measure": "cost", "output": "change"}), after).await.unwrap_err();
    assert!(e.contains("compare"), "{e}");
}

#[tokio::test]
async fn breakdowns_as_series_and_tables_with_top_n() {
    let (state, _dir) = state_with(&fixture_run("tools", "grpc")).await;
    // wide series over the whole hour: 60 one-minute buckets, zero-filled, label = group key
    let fs = frames(&state, json!({"queryType": "breakdown", "measure": "tokens", "groupBy": "team"}), hour()).await.unwrap();
    let frame = &fs[0];
    assert_eq!(frame.fields.len(), 2);
    assert_eq!(frame.fields[1].labels.get("team").map(String::as_str), Some("platform"));
    let c = columns(frame);
    assert_eq!(c["time"].len(), 60);
    assert_eq!(sum(&c["tokens"]), 39365.0);
    assert_eq!(c["tokens"].iter().filter(|v| f(v) == 0.0).count(), 59, "zero-filled except the capture minute");

    // by user across metrics and events, model names differ per source
    let c = one(&state, json!({"queryType": "breakdown", "measure": "cost", "groupBy": "model", "format": "table"})).await;
    assert_eq!(c["model"], [json!("claude-opus-4-8[1m]")]);
    let c =
        one(&state, json!({"queryType": "breakdown", "measure": "cost", "groupBy": "model", "format": "table", "source": "events"})).await;
    assert_eq!(c["model"], [json!("claude-opus-4-8")]);
    assert!(close(f(&c["cost_usd"][0]), 0.048449));

    // top 2 tools by calls, the rest folded into "other"
    let c = one(&state, json!({"queryType": "breakdown", "measure": "tool_calls", "groupBy": "tool_name", "format": "table", "limit": 2}))
        .await;
    assert_eq!(c["tool_name"], [json!("Bash"), json!("other"), json!("Edit")]);
    assert_eq!(c["tool_calls"], [json!(3), json!(2), json!(1)]);

    // resource attribute keys and a missing key
    let c = one(&state, json!({"queryType": "breakdown", "measure": "sessions", "groupBy": "cost_center", "format": "table"})).await;
    assert_eq!((c["cost_center"][0].clone(), f(&c["sessions"][0])), (json!("eng"), 1.0));
    let c = one(&state, json!({"queryType": "breakdown", "measure": "sessions", "groupBy": "user.email", "format": "table"})).await;
    assert_eq!(c["user.email"], [json!("(none)")]);
    let c = one(&state, json!({"queryType": "breakdown", "measure": "cost", "groupBy": "terminal.type", "format": "table"})).await;
    assert_eq!(c["terminal.type"], [json!("xterm")]);
}

#[tokio::test]
async fn api_latency_and_errors() {
    let (state, _dir) = state_with(&fixture_run("tools", "grpc")).await;
    let c = one(&state, json!({"queryType": "api_latency", "format": "table", "groupBy": "model"})).await;
    assert_eq!(c["model"], [json!("claude-opus-4-8")]);
    assert_eq!(c["requests"], [json!(7)]);
    assert_eq!(f(&c["p50_duration_ms"][0]), 34.0);
    assert!(close(f(&c["p95_duration_ms"][0]), 62.5));
    let c = one(&state, json!({"queryType": "api_latency", "percentiles": [95], "latencies": ["duration"]})).await;
    assert_eq!(c.keys().collect::<Vec<_>>(), ["p95_duration_ms", "time"]);
    // time to first token is asked by default; 2.1.197 sends none, so that series has no values
    let c = one(&state, json!({"queryType": "api_latency", "percentiles": [95]})).await;
    assert_eq!(c.keys().collect::<Vec<_>>(), ["p95_duration_ms", "p95_ttft_ms", "time"]);
    assert!(c["p95_ttft_ms"].iter().all(Value::is_null));
    let c = one(&state, json!({"queryType": "api_latency", "percentiles": [95], "latencies": ["duration"]})).await;
    assert_eq!(c["p95_duration_ms"].iter().filter(|v| !v.is_null()).count(), 1, "no requests = no latency, not 0");
    let e = frames(&state, json!({"queryType": "api_latency", "percentiles": [42]}), hour()).await.unwrap_err();
    assert!(e.contains("42"), "{e}");

    let e = frames(&state, json!({"queryType": "breakdown", "measure": "cost", "format": "logs"}), hour()).await.unwrap_err();
    assert!(e.contains("only for raw SQL"), "{e}");

    let (state, _dir) = state_with(&fixture_run("exhaust", "http/json")).await;
    assert!(one(&state, json!({"queryType": "api_latency", "format": "table"})).await.is_empty(), "no requests: no data");
    let c = one(&state, json!({"queryType": "api_errors", "format": "table"})).await;
    assert_eq!(c["status_code"], [json!("500")]);
    assert_eq!((c["errors"][0].clone(), c["retries_exhausted"][0].clone(), f(&c["error_rate"][0])), (json!(1), json!(1), 1.0));
    let fs = frames(&state, json!({"queryType": "api_errors"}), hour()).await.unwrap();
    assert_eq!(fs[0].fields[1].labels.get("status_code").map(String::as_str), Some("500"));
    assert_eq!(sum(&columns(&fs[0])["error_rate"]), 1.0);
}

#[tokio::test]
async fn tools_decisions_costs_and_productivity() {
    let (state, _dir) = state_with(&fixture_run("tools", "grpc")).await;
    let c = one(&state, json!({"queryType": "tool_success_rate"})).await;
    assert_eq!(c["tool_name"], [json!("Bash"), json!("Edit"), json!("Read"), json!("Write")]);
    assert_eq!(c["calls"], [json!(3), json!(1), json!(1), json!(1)]);
    assert_eq!(c["success_rate"], [json!(1.0), json!(1.0), json!(1.0), json!(1.0)]);
    assert_eq!(c["p50_duration_ms"], [json!(106.0), json!(7.0), json!(4.0), json!(5.0)]);
    assert_eq!(c["accepts"], [json!(3), json!(1), json!(1), json!(1)]);
    assert!(c["tool_source"].iter().all(|s| s == "(none)"), "2.1.197 sends no tool_source");

    // valueField leaves the text columns and one number: a numeric table for alerting
    let c = one(&state, json!({"queryType": "tool_success_rate", "valueField": "success_rate"})).await;
    assert_eq!(c.keys().collect::<Vec<_>>(), ["success_rate", "tool_name", "tool_source"]);
    let e = frames(&state, json!({"queryType": "tool_success_rate", "valueField": "nope"}), hour()).await.unwrap_err();
    assert!(e.contains("nope") && e.contains("success_rate"), "{e}");

    assert!(one(&state, json!({"queryType": "tool_errors"})).await.is_empty(), "no failures: no data");

    let c = one(&state, json!({"queryType": "tool_decisions"})).await;
    assert_eq!(c["origin"].iter().filter(|o| *o == "tool_decision").count(), 4);
    assert_eq!(c["tool_name"], [json!("Bash"), json!("Edit"), json!("Read"), json!("Write"), json!("Edit"), json!("Write")]);
    assert_eq!(c["decisions"], [json!(3), json!(1), json!(1), json!(1), json!(1), json!(1)]);
    assert!(c["decision"].iter().all(|d| d == "accept") && c["source"].iter().all(|s| s == "config"));
    assert!(c["permission_mode"].iter().chain(&c["tool_source"]).all(|s| s == "(none)"), "2.1.197 sends neither");

    // 2.1.332 (multi): 4 accepts and 2 rejects in permission mode "default", all built-in tools
    let (v332, _dir332) = state_with(&crate::test_fixtures::run_v332("multi", "http/protobuf")).await;
    let c = wide(&v332, json!({"queryType": "tool_decisions"})).await;
    let rows: Vec<String> = (0..c["origin"].len())
        .map(|i| {
            let v = |k: &str| c[k][i].as_str().map(str::to_string).unwrap_or_else(|| c[k][i].to_string());
            [v("origin"), v("tool_name"), v("decision"), v("permission_mode"), v("tool_source"), v("decisions")].join(" ")
        })
        .collect();
    assert_eq!(
        rows,
        [
            "tool_decision Bash accept default builtin 2",
            "tool_decision Read accept default builtin 2",
            "tool_decision Bash reject default builtin 1",
            "tool_decision Write reject default builtin 1",
            "code_edit_tool.decision Write reject (none) (none) 1",
        ]
    );
    let c = wide(&v332, json!({"queryType": "tool_success_rate"})).await;
    assert_eq!(c["tool_name"], [json!("Bash"), json!("Read"), json!("Write")]);
    assert_eq!(c["tool_source"], [json!("builtin"), json!("builtin"), json!("builtin")]);
    assert_eq!(c["calls"], [json!(2), json!(2), json!(0)]);
    assert_eq!(c["failures"], [json!(0), json!(1), json!(0)]);
    assert_eq!(c["rejects"], [json!(1), json!(0), json!(1)]);
    let q = json!({"queryType": "breakdown", "measure": "events", "groupBy": "permission_mode", "format": "table",
        "adhocFilters": [{"key": "event.name", "operator": "=", "value": "tool_decision"}]});
    let c = wide(&v332, q).await;
    assert_eq!((c["permission_mode"].clone(), c["events"].clone()), (vec![json!("default")], vec![json!(6)]));

    let c = one(&state, json!({"queryType": "tool_costs"})).await;
    assert_eq!(c["tool_name"], [json!("Bash"), json!("Write"), json!("Edit"), json!("Read")]);
    let costs: Vec<f64> = c["attributed_cost_usd"].iter().map(f).collect();
    for (got, want) in costs.iter().zip([0.025915, 0.005671, 0.0056, 0.004829]) {
        assert!(close(*got, want), "{costs:?}");
    }
    // the last request (the final answer, 0.006434) caused no tool call
    assert!(close(costs.iter().sum::<f64>() + 0.006434, 0.048449));

    let c = one(&state, json!({"queryType": "productivity"})).await;
    assert_eq!((c["lines_added"][0].clone(), c["lines_removed"][0].clone()), (json!(7), json!(1)));
    assert_eq!((c["commits"][0].clone(), c["pull_requests"][0].clone()), (json!(1), json!(1)));
    assert!(close(f(&c["active_time_s"][0]), 1.199) && close(f(&c["active_time_cli_s"][0]), 1.199));
    let c = one(&state, json!({"queryType": "productivity", "groupBy": "model"})).await;
    assert_eq!(c["model"], [json!("claude-opus-4-8"), json!("(none)")]);
    assert_eq!(c["lines_added"], [json!(7), json!(0)]);
}

#[tokio::test]
async fn logs_trace_counts_variables_and_annotations() {
    let (state, _dir) = state_with(&fixture_run("tools", "grpc")).await;
    let fs = frames(&state, json!({"queryType": "logs", "eventNames": ["claude_code.api_request"]}), hour()).await.unwrap();
    let c = columns(&fs[0]);
    assert_eq!(c["body"].len(), 7);
    let names: Vec<&str> = fs[0].fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names[..5], ["timestamp", "body", "severity", "id", "labels"], "data-plane log lines");
    assert_eq!(fs[0].meta.frame_type(), Some(crate::frame::FrameType::LogLines));
    assert_eq!(c["labels"][0]["event.name"], "api_request", "every attribute in the labels");
    assert_eq!(c["labels"][0]["service.name"], "claude-code", "and the resource's");
    assert!(c["body"][0].as_str().unwrap().starts_with("api_request model=claude-opus-4-8 cost_usd="));
    assert!(c["severity"].iter().all(|l| l == "info"));
    let c = one(&state, json!({"queryType": "logs", "search": "NOTES.TXT"})).await;
    assert_eq!(c["event_name"], [json!("assistant_response"), json!("user_prompt")], "case-insensitive search in prompt and response");
    assert!(one(&state, json!({"queryType": "logs", "search": "%"})).await.is_empty(), "wildcards are literal");

    let fs = frames(&state, json!({"queryType": "trace", "promptId": "a36c5540-8cdb-43be-a55b-6015ffe62e77"}), hour()).await.unwrap();
    let c = columns(&fs[0]);
    assert_eq!(c["spanID"].len(), 26, "1 interaction + 7 llm_request + 6 × (tool, blocked_on_user, execution)");
    assert_eq!(c["parentSpanID"].iter().filter(|p| p.is_null()).count(), 1, "one root");
    let root = c["parentSpanID"].iter().position(Value::is_null).unwrap();
    assert_eq!(c["operationName"][root], "claude_code.interaction");
    assert!(c["tags"][root].as_array().unwrap().iter().any(|t| t["key"] == "user_prompt"), "tags as a JSON array");
    assert!(c["serviceTags"][root].as_array().unwrap().iter().any(|t| t["key"] == "service.name"));
    assert!(c["serviceName"].iter().all(|s| s == "claude-code"));
    let by_trace = frames(&state, json!({"queryType": "trace", "traceId": c["traceID"][0]}), hour()).await.unwrap();
    assert_eq!(columns(&by_trace[0])["spanID"].len(), 26);
    assert!(frames(&state, json!({"queryType": "trace"}), hour()).await.unwrap_err().contains("traceId or promptId"));

    let c = one(&state, json!({"queryType": "event_counts"})).await;
    let count_of = |kind: &str, name: &str| -> i64 {
        let i = (0..c["name"].len()).find(|i| c["kind"][*i] == kind && c["name"][*i] == name).unwrap_or_else(|| panic!("{name}"));
        c["count"][i].as_i64().unwrap()
    };
    assert_eq!(count_of("event", "hook_execution_start"), 5);
    assert_eq!(count_of("event", "hook_registered"), 2);
    assert_eq!(count_of("event", "at_mention"), 1);
    assert_eq!(count_of("span", "claude_code.llm_request"), 7);
    assert_eq!(count_of("span", "claude_code.interaction"), 1);

    let c = one(&state, json!({"queryType": "variable", "key": "model"})).await;
    assert_eq!(c["value"], [json!("claude-opus-4-8")], "one model, whichever name its records use");
    let c = one(&state, json!({"queryType": "variable", "key": "team"})).await;
    assert_eq!(c["text"], [json!("platform")]);
    assert_eq!(one(&state, json!({"queryType": "variable", "key": "event_name"})).await["value"].len(), 9);
    assert_eq!(
        one(&state, json!({"queryType": "variable", "key": "session"})).await["value"],
        [json!("6baa5822-a9e9-442e-8af4-2aff0ed6b5f5")]
    );

    let (state, _dir) = state_with(&fixture_run("exhaust", "http/json")).await;
    let c = one(&state, json!({"queryType": "annotations"})).await;
    assert_eq!(c["title"], [json!("Session started"), json!("API error 500")]);
    assert!(c["text"][1].as_str().unwrap().contains("attempt 3"));
    assert_eq!(c["tags"][1], "api_error,claude-opus-4-8[1m]");
}

#[tokio::test]
async fn filters_narrow_every_query() {
    let (state, _dir) = state_with(&[fixture_run("tools", "grpc"), fixture_run("exhaust", "http/json")].concat()).await;
    let cost = |extra: Value| {
        let mut q = json!({"queryType": "stat", "measure": "sessions", "source": "events"});
        q.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        q
    };
    assert_eq!(f(&one(&state, cost(json!({}))).await["value"][0]), 2.0);
    assert_eq!(f(&one(&state, cost(json!({"sessions": ["d7efca2a-637d-4fd0-bdfb-b15cdb598c72"]}))).await["value"][0]), 1.0);
    assert_eq!(f(&one(&state, cost(json!({"sessions": "$__all"}))).await["value"][0]), 2.0);
    let users = json!({"users": ["c428261b73602375da95ab8910813971f8b10c9e71c5c604a77a84141fa89d2b"]});
    assert_eq!(f(&one(&state, cost(users)).await["value"][0]), 1.0);
    assert_eq!(f(&one(&state, cost(json!({"teams": ["platform"]}))).await["value"][0]), 2.0);
    assert_eq!(f(&one(&state, cost(json!({"teams": ["other"]}))).await["value"][0]), 0.0);
    // `claude-opus-4-8[1m]` (the exhaust run's api_error) and `claude-opus-4-8` (the tools run's
    // requests) are one model: both sessions
    assert_eq!(f(&one(&state, cost(json!({"models": ["claude-opus-4-8[1m]"]}))).await["value"][0]), 2.0);
    assert_eq!(f(&one(&state, cost(json!({"models": ["claude-opus-5-5"]}))).await["value"][0]), 0.0);
    let adhoc = json!({"adhocFilters": [{"key": "cost_usd", "operator": ">", "value": "0.007"}]});
    let c = one(&state, json!({"queryType": "stat", "measure": "api_requests", "adhocFilters": adhoc["adhocFilters"]})).await;
    let check = one(
        &state,
        json!({"queryType": "sql", "rawSql": "SELECT count(*) AS n FROM events WHERE event_name = 'api_request' AND cost_usd > 0.007"}),
    )
    .await;
    assert_eq!(f(&c["value"][0]), f(&check["n"][0]));
    assert_eq!(f(&c["value"][0]), 1.0, "one request above $0.007");
    let adhoc = json!([{"key": "tool_name", "operator": "=~", "value": "B.*"}]);
    let c = one(&state, json!({"queryType": "tool_success_rate", "adhocFilters": adhoc})).await;
    assert_eq!(c["tool_name"], [json!("Bash")]);
    let adhoc = json!([{"key": "os.type", "operator": "!=", "value": "linux"}]);
    assert!(one(&state, json!({"queryType": "sessions", "adhocFilters": adhoc})).await.is_empty());
}

#[tokio::test]
async fn raw_sql_with_macros_formats_and_sandbox() {
    let (state, _dir) = state_with(&fixture_run("tools", "grpc")).await;
    let series = json!({"queryType": "sql", "format": "time_series",
        "rawSql": "SELECT $__timeGroupAlias(time, 1m, 0), model, sum(cost_usd) AS cost_usd FROM events WHERE $__timeFilter(time) AND event_name = 'api_request' GROUP BY ALL ORDER BY 1;"});
    let fs = frames(&state, series, hour()).await.unwrap();
    let c = columns(&fs[0]);
    assert_eq!(c["time"].len(), 60, "filled over the range");
    assert!(close(sum(&c["cost_usd"]), 0.048449));
    assert_eq!(fs[0].fields[1].labels.get("model").map(String::as_str), Some("claude-opus-4-8"));
    let executed = fs[0].meta.executed_query_string.clone().unwrap();
    assert!(executed.contains("TIMESTAMP '2026-11-21 21:20:00.000000'"), "{executed}");

    let c = one(
        &state,
        json!({"queryType": "sql", "rawSql": "SELECT event_name, count(*) AS n FROM events GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 2"}),
    )
    .await;
    assert_eq!(c["event_name"], [json!("api_request"), json!("tool_decision")]);
    let fs = frames(&state, json!({"queryType": "sql", "format": "logs", "rawSql": "SELECT time, event_name AS body FROM events"}), hour())
        .await
        .unwrap();
    assert_eq!(columns(&fs[0])["body"].len(), 35);

    let refused = [
        ("DELETE FROM events", "read-only"),
        ("INSERT INTO events SELECT * FROM events", "read-only"),
        ("DROP TABLE events", "read-only"),
        ("CREATE TABLE x AS SELECT 1", "read-only"),
        ("UPDATE events SET model = 'x'", "read-only"),
        ("ATTACH '/tmp/other.duckdb' AS o", "read-only"),
        ("COPY events TO '/tmp/out.csv'", "read-only"),
        ("INSTALL httpfs", "read-only"),
        ("LOAD httpfs", "read-only"),
        ("SET threads = 1", "read-only"),
        ("PRAGMA enable_profiling", "read-only"),
        ("CALL checkpoint()", "read-only"),
        ("SELECT 1; DELETE FROM events", "read-only"),
        ("SELECT 1; SELECT 2", "one statement"),
        ("SELECT * FROM read_csv('/etc/passwd')", "disabled by configuration"),
        ("SELECT * FROM read_text('/etc/hostname')", "disabled by configuration"),
        ("SELECT * FROM read_parquet('/tmp/x.parquet')", "disabled by configuration"),
        ("SELECT * FROM glob('/*')", "disabled by configuration"),
        ("SELECT * FROM '/etc/passwd'", "passwd"),
        ("SELECT * FROM query('DELETE FROM events')", "SELECT"),
        ("SELECT 1) AS x; DELETE FROM events; SELECT (1", "SQL error"),
        ("SELECT $__bogus()", "unknown macro"),
        ("", "empty"),
    ];
    for (sql, why) in refused {
        let e = frames(&state, json!({"queryType": "sql", "rawSql": sql}), hour()).await.unwrap_err();
        assert!(e.contains(why), "{sql:?}: {e}");
    }
    let c = one(&state, json!({"queryType": "stat", "measure": "events", "source": "events"})).await;
    assert_eq!(f(&c["value"][0]), 35.0, "nothing was changed");

    // row cap with a notice, time limit
    let tight = QueryContext { limits: super::raw::Limits { timeout: std::time::Duration::from_millis(200), max_rows: 5 }, ..hour() };
    let fs = frames(&state, json!({"queryType": "sql", "rawSql": "SELECT * FROM range(100)"}), tight).await.unwrap();
    assert_eq!(columns(&fs[0])["range"].len(), 5);
    let notices = fs[0].meta.notices.clone();
    assert!(notices[0].text.contains("first 5 rows"));
    let slow = json!({"queryType": "sql", "rawSql": "SELECT count(*) FROM range(100000) a, range(100000) b WHERE a.range + b.range = 7"});
    let started = std::time::Instant::now();
    let e = frames(&state, slow, tight).await.unwrap_err();
    assert!(e.contains("cancelled") && e.contains("0.2 s"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // the connection is usable after the interruption
    assert_eq!(f(&one(&state, json!({"queryType": "sql", "rawSql": "SELECT count(*) AS n FROM events"})).await["n"][0]), 35.0);
}

/// Sum data points of a delta export into the cumulative exports an SDK with cumulative
/// temporality would have sent (every series repeated, values growing), or the reverse.
mod temporality {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, AggregationTemporality};
    use prost::Message;
    use std::collections::BTreeMap;

    fn value(p: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint) -> f64 {
        match p.value {
            Some(number_data_point::Value::AsDouble(d)) => d,
            Some(number_data_point::Value::AsInt(i)) => i as f64,
            None => 0.0,
        }
    }

    /// `to_cumulative = true`: running sums, every series seen so far in every export.
    /// `false`: differences between consecutive cumulative points.
    pub fn convert(requests: &[Vec<u8>], to_cumulative: bool) -> Vec<Vec<u8>> {
        let mut state: BTreeMap<
            String,
            (opentelemetry_proto::tonic::metrics::v1::Metric, opentelemetry_proto::tonic::metrics::v1::NumberDataPoint, f64),
        > = BTreeMap::new();
        let mut out = Vec::new();
        for body in requests {
            let mut req = ExportMetricsServiceRequest::decode(body.as_slice()).unwrap();
            let time = req.resource_metrics[0].scope_metrics[0].metrics[0].data.as_ref().map(|d| match d {
                metric::Data::Sum(s) => s.data_points[0].time_unix_nano,
                _ => 0,
            });
            let mut emitted: BTreeMap<String, opentelemetry_proto::tonic::metrics::v1::Metric> = BTreeMap::new();
            for m in &req.resource_metrics[0].scope_metrics[0].metrics {
                let Some(metric::Data::Sum(sum)) = &m.data else { panic!("only sums") };
                for p in &sum.data_points {
                    let key = format!("{}{:?}", m.name, p.attributes);
                    let v = value(p);
                    let entry = state.entry(key.clone()).or_insert_with(|| (m.clone(), p.clone(), 0.0));
                    let new_value = if to_cumulative { entry.2 + v } else { v - entry.2 };
                    entry.2 = if to_cumulative { entry.2 + v } else { v };
                    if to_cumulative {
                        entry.1.value = Some(number_data_point::Value::AsDouble(entry.2));
                    } else {
                        let mut q = p.clone();
                        q.value = Some(number_data_point::Value::AsDouble(new_value));
                        push(emitted.entry(m.name.clone()).or_insert_with(|| empty(m, AggregationTemporality::Delta)), q);
                    }
                }
            }
            if to_cumulative {
                for (m, p, _) in state.values() {
                    let mut p = p.clone();
                    p.time_unix_nano = time.unwrap_or(p.time_unix_nano);
                    push(emitted.entry(m.name.clone()).or_insert_with(|| empty(m, AggregationTemporality::Cumulative)), p);
                }
            }
            req.resource_metrics[0].scope_metrics[0].metrics = emitted.into_values().collect();
            out.push(req.encode_to_vec());
        }
        out
    }

    fn empty(
        m: &opentelemetry_proto::tonic::metrics::v1::Metric,
        t: AggregationTemporality,
    ) -> opentelemetry_proto::tonic::metrics::v1::Metric {
        let mut m = m.clone();
        if let Some(metric::Data::Sum(s)) = &mut m.data {
            s.data_points.clear();
            s.aggregation_temporality = t as i32;
        }
        m
    }

    fn push(m: &mut opentelemetry_proto::tonic::metrics::v1::Metric, p: opentelemetry_proto::tonic::metrics::v1::NumberDataPoint) {
        if let Some(metric::Data::Sum(s)) = &mut m.data {
            s.data_points.push(p);
        }
    }
}

async fn metric_totals(bodies: &[Vec<u8>]) -> Vec<f64> {
    use crate::ingest::decode::{Encoding, Signal};
    let dir = tempfile::tempdir().unwrap();
    let state = crate::app::AppState::new(crate::config::Config::standalone(Some(dir.path().to_path_buf()), None, None));
    state.open_store().await.unwrap();
    for b in bodies {
        let outcome =
            state.ingest.export_body(Signal::Metrics, Encoding::Protobuf, b, false, crate::ingest::testing::ORIGIN).await.unwrap();
        assert_eq!(outcome.rejected, 0);
    }
    let mut totals = Vec::new();
    for m in [
        "sessions",
        "active_sessions",
        "cost",
        "tokens",
        "input_tokens",
        "cache_read_tokens",
        "cache_hit_ratio",
        "active_time",
        "lines_added",
        "lines_removed",
        "commits",
        "pull_requests",
    ] {
        totals.push(f(&one(&state, json!({"queryType": "stat", "measure": m})).await["value"][0]));
    }
    let c = one(&state, json!({"queryType": "breakdown", "measure": "tokens", "groupBy": "type", "format": "table", "limit": 0})).await;
    totals.extend(c["tokens"].iter().map(f));
    totals
}

#[tokio::test]
async fn delta_and_cumulative_give_identical_totals() {
    let bodies = |run: &str, proto: &str| -> Vec<Vec<u8>> {
        fixture_run(run, proto).iter().filter(|f| f.signal == "metrics").map(|f| crate::test_fixtures::fixture(&f.file)).collect()
    };
    // tools: two delta exports → two cumulative exports
    let delta = bodies("tools", "grpc");
    assert_eq!(delta.len(), 2);
    let as_delta = metric_totals(&delta).await;
    let as_cumulative = metric_totals(&temporality::convert(&delta, true)).await;
    assert_eq!(as_delta.len(), as_cumulative.len());
    for (a, b) in as_delta.iter().zip(&as_cumulative) {
        assert!(close(*a, *b), "delta {as_delta:?}\ncumulative {as_cumulative:?}");
    }
    assert!(close(as_delta[2], 0.048449) && as_delta[0] == 1.0, "{as_delta:?}");
    // error-cumulative: three cumulative exports (session.count = 1 in each) → deltas
    let cumulative = bodies("error-cumulative", "http/protobuf");
    assert_eq!(cumulative.len(), 3);
    let as_cumulative = metric_totals(&cumulative).await;
    let as_delta = metric_totals(&temporality::convert(&cumulative, false)).await;
    for (a, b) in as_delta.iter().zip(&as_cumulative) {
        assert!(close(*a, *b), "delta {as_delta:?}\ncumulative {as_cumulative:?}");
    }
    assert_eq!(as_cumulative[0], 1.0, "one session, reported three times");
    assert!(close(as_cumulative[2], 0.018464));
}

/// Failures the captured runs never produced, made from real records of the tools run: a failed
/// tool call, a rejected decision and a refusal (an `api_request` record renamed, as TELEMETRY.md
/// lists for `api_refusal`).
fn failure_records() -> Vec<u8> {
    let body = crate::test_fixtures::fixture("http-json/tools-03-logs.json");
    let mut req: Value = serde_json::from_slice(&body).unwrap();
    let records = req.pointer_mut("/resourceLogs/0/scopeLogs/0/logRecords").unwrap().as_array_mut().unwrap();
    let attr =
        |r: &Value, k: &str| -> Option<Value> { r["attributes"].as_array()?.iter().find(|a| a["key"] == k).map(|a| a["value"].clone()) };
    let set = |r: &mut Value, k: &str, v: &str| {
        let attrs = r["attributes"].as_array_mut().unwrap();
        attrs.retain(|a| a["key"] != k);
        attrs.push(json!({"key": k, "value": {"stringValue": v}}));
    };
    let find =
        |records: &Vec<Value>, name: &str| records.iter().find(|r| attr(r, "event.name") == Some(json!({"stringValue": name}))).cloned();
    let mut failed = find(records, "tool_result").expect("a tool_result");
    set(&mut failed, "success", "false");
    set(&mut failed, "error_type", "TelemetrySafeError");
    set(&mut failed, "error", "Command timed out after 120s");
    set(&mut failed, "tool_name", "Bash");
    let mut rejected = find(records, "tool_decision").expect("a tool_decision");
    set(&mut rejected, "decision", "reject");
    set(&mut rejected, "source", "user_reject");
    set(&mut rejected, "tool_name", "Write");
    let mut refusal = find(records, "api_request").expect("an api_request");
    set(&mut refusal, "event.name", "api_refusal");
    *records = vec![failed, rejected, refusal];
    serde_json::to_vec(&req).unwrap()
}

#[tokio::test]
async fn failures_rejections_and_refusals() {
    use crate::ingest::decode::{Encoding, Signal};
    let (state, _dir) = state_with(&[]).await;
    let outcome =
        state.ingest.export_body(Signal::Logs, Encoding::Json, &failure_records(), false, crate::ingest::testing::ORIGIN).await.unwrap();
    assert_eq!(outcome.rejected, 0);
    let c = one(&state, json!({"queryType": "tool_errors"})).await;
    assert_eq!(c["tool_name"], [json!("Bash")]);
    assert_eq!(c["error_type"], [json!("TelemetrySafeError")]);
    assert_eq!(c["failures"], [json!(1)]);
    assert_eq!(c["example_error"], [json!("Command timed out after 120s")]);
    let c = one(&state, json!({"queryType": "tool_success_rate"})).await;
    assert_eq!(c["tool_name"], [json!("Bash"), json!("Write")]);
    assert_eq!(c["failures"], [json!(1), json!(0)]);
    assert_eq!(c["success_rate"], [json!(0.0), Value::Null], "no calls: no rate");
    assert_eq!(c["rejects"], [json!(0), json!(1)]);
    for (measure, value) in [("tool_failures", 1.0), ("refusals", 1.0), ("tool_calls", 1.0)] {
        assert_eq!(f(&one(&state, json!({"queryType": "stat", "measure": measure})).await["value"][0]), value, "{measure}");
    }
    let c = one(&state, json!({"queryType": "tool_decisions"})).await;
    assert_eq!(
        (c["tool_name"][0].clone(), c["source"][0].clone(), c["decision"][0].clone()),
        (json!("Write"), json!("user_reject"), json!("reject"))
    );
    let c = one(&state, json!({"queryType": "annotations", "kinds": ["tool_reject"]})).await;
    assert_eq!(c["title"], [json!("Tool rejected: Write")]);
    let c = one(&state, json!({"queryType": "logs", "search": "timed out"})).await;
    assert_eq!(c["severity"], [json!("error")]);
    assert!(c["body"][0].as_str().unwrap().contains("error=Command timed out after 120s"));
    let c = one(&state, json!({"queryType": "logs", "eventNames": ["api_refusal", "tool_decision"]})).await;
    assert_eq!(c["severity"], [json!("warning"), json!("warning")]);
}

/// A key or event name no Claude Code has sent yet needs no code: it shows in the timeline, logs
/// and trace tags, groups a breakdown, filters any query and lists as a variable.
#[tokio::test]
async fn a_future_attribute_and_event_work_without_code() {
    use crate::ingest::decode::{Encoding, Signal};
    use crate::ingest::testing::ORIGIN;
    let (state, _dir) = state_with(&[]).await;
    let future = json!({"key": "acme.future_key", "value": {"stringValue": "alpha"}});
    for f in crate::test_fixtures::run_v332("multi-assistant", "http/json") {
        let mut body: Value = serde_json::from_slice(&f.body()).unwrap();
        let signal = match f.signal.as_str() {
            "logs" => Signal::Logs,
            "traces" => Signal::Traces,
            _ => Signal::Metrics,
        };
        for resource in body.as_object_mut().unwrap().values_mut().flat_map(|v| v.as_array_mut().unwrap()) {
            for scope in resource
                .as_object_mut()
                .unwrap()
                .iter_mut()
                .filter(|(k, _)| k.starts_with("scope"))
                .flat_map(|(_, v)| v.as_array_mut().unwrap())
            {
                for (kind, records) in scope.as_object_mut().unwrap().iter_mut() {
                    if kind != "logRecords" && kind != "spans" {
                        continue;
                    }
                    for record in records.as_array_mut().unwrap() {
                        let attrs = record["attributes"].as_array_mut().unwrap();
                        attrs.push(future.clone());
                        // one event becomes an event of a name never seen
                        for a in attrs
                            .iter_mut()
                            .filter(|a| a["key"] == "event.name" && a["value"]["stringValue"] == "managed_settings_resolved")
                        {
                            a["value"]["stringValue"] = json!("future_event");
                        }
                    }
                }
            }
        }
        let body = serde_json::to_vec(&body).unwrap();
        let outcome = state.ingest.export_body(signal, Encoding::Json, &body, false, ORIGIN).await.unwrap();
        assert_eq!(outcome.rejected, 0);
    }
    let c =
        wide(&state, json!({"queryType": "breakdown", "measure": "api_requests", "groupBy": "acme.future_key", "format": "table"})).await;
    assert_eq!((c["acme.future_key"].clone(), c["api_requests"].clone()), (vec![json!("alpha")], vec![json!(7)]));
    for (value, requests) in [("alpha", 7.0), ("beta", 0.0)] {
        let q = json!({"queryType": "stat", "measure": "api_requests", "adhocFilters": [{"key": "acme.future_key", "operator": "=", "value": value}]});
        assert_eq!(f(&wide(&state, q).await["value"][0]), requests, "{value}");
    }
    let c = wide(&state, json!({"queryType": "variable", "key": "acme.future_key"})).await;
    assert_eq!(c["value"], [json!("alpha")]);
    let c = wide(&state, json!({"queryType": "logs", "eventNames": ["future_event"]})).await;
    assert_eq!(c["event_name"].len(), 1, "{c:?}");
    assert_eq!(c["labels"][0]["acme.future_key"], "alpha");
    let c = wide(&state, json!({"queryType": "event_counts"})).await;
    assert!(c.values().any(|col| col.contains(&json!("future_event"))), "{c:?}");
    let session = wide(&state, json!({"queryType": "variable", "key": "session"})).await["value"][0].clone();
    let c = wide(&state, json!({"queryType": "session_timeline", "sessionId": session})).await;
    assert!(c["attributes"].iter().all(|a| a["acme.future_key"] == "alpha"));
    let prompt = wide(&state, json!({"queryType": "variable", "key": "prompt.id"})).await["value"][0].clone();
    let c = wide(&state, json!({"queryType": "trace", "promptId": prompt})).await;
    assert!(
        !c["tags"].is_empty()
            && c["tags"].iter().all(|t| t.as_array().unwrap().contains(&json!({"key": "acme.future_key", "value": "alpha"})))
    );
}
