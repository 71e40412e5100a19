//! Explore as Grafana drives it, through the plugin protocol and Grafana's frame decoder: the
//! logs volume and a line's context, trace search, and the data links on every id, with exact
//! numbers from the fixtures (`tools` over gRPC: one prompt, 35 events, 7 model calls, 6 tools;
//! `exhaust` over OTLP/JSON: a prompt whose model call failed until retries ran out).
mod common;

use common::test_fixtures::run;
use common::{DecodedFrame, Plugin, QueryResult};
use serde_json::{json, Value};

const FROM: i64 = 1_700_000_000;
const TO: i64 = 1_900_000_000;

const TOOLS_SESSION: &str = "6baa5822-a9e9-442e-8af4-2aff0ed6b5f5";
const EXHAUST_SESSION: &str = "d7efca2a-637d-4fd0-bdfb-b15cdb598c72";
const TOOLS_TRACE: &str = "21fb32741b45509b3ff46a035770d966";
const EXHAUST_TRACE: &str = "5d4efbd488f83ce230f94c1c17720af8";
/// The `Edit` tool span of the tools run, started at …768.256 s.
const EDIT_SPAN: &str = "1c830cef8bc72ea5";
/// Event 13 of the tools run (an api_request) at 1795296768255 ms.
const EVENT_13_MS: i64 = 1_795_296_768_255;

async fn plugin() -> Plugin {
    let plugin = Plugin::start().await;
    plugin.ingest_grpc(&run("tools", "grpc")).await;
    plugin.ingest_http(&run("exhaust", "http/json")).await;
    plugin
}

fn ok(what: &str, r: QueryResult) -> Vec<DecodedFrame> {
    assert_eq!((r.status, r.error.as_str()), (200, ""), "{what}");
    r.frames
}

/// Level → events, summed over a volume's frames.
fn volume_counts(frames: &[DecodedFrame]) -> Vec<(String, i64)> {
    frames
        .iter()
        .filter(|f| !f.fields.is_empty())
        .map(|f| {
            assert_eq!(f.frame_type(), "timeseries-multi");
            let count = &f.fields[1];
            (count.labels["level"].as_str().unwrap().to_string(), count.f64s().iter().sum::<f64>() as i64)
        })
        .collect()
}

fn sequences(frame: &DecodedFrame) -> Vec<i64> {
    frame.field("event_sequence").i64s()
}

#[tokio::test]
async fn logs_volume_counts_the_logs_query_per_level() {
    let plugin = plugin().await;
    let all = ok("volume", plugin.query(json!({"queryType": "logs_volume"}), FROM, TO).await);
    // 35 events of the tools run (none failed), and the exhaust run's prompt, API error and
    // exhausted retries
    assert_eq!(volume_counts(&all), [("error".to_string(), 2), ("info".to_string(), 36)]);

    // the same filters as the logs query: names, text, sessions, ad hoc filters
    let calls = ok("names", plugin.query(json!({"queryType": "logs_volume", "eventNames": ["api_request"]}), FROM, TO).await);
    assert_eq!(volume_counts(&calls), [("info".to_string(), 7)]);
    let exhaust = ok("session", plugin.query(json!({"queryType": "logs_volume", "sessions": [EXHAUST_SESSION]}), FROM, TO).await);
    assert_eq!(volume_counts(&exhaust), [("error".to_string(), 2), ("info".to_string(), 1)]);
    let errors = json!({"queryType": "logs_volume", "adhocFilters": [{"key": "severity", "operator": "=", "value": "error"}]});
    assert_eq!(volume_counts(&ok("severity", plugin.query(errors, FROM, TO).await)), [("error".to_string(), 2)]);

    // and it agrees with the lines the logs query returns
    let logs = ok("logs", plugin.query(json!({"queryType": "logs"}), FROM, TO).await);
    let severities = logs[0].field("severity").strs();
    assert_eq!(severities.iter().filter(|s| *s == "error").count(), 2);
    assert_eq!(severities.len(), 38);

    // a bucket per interval of the range: 1-minute buckets over an hour are 61 rows
    let hour = ok("hour", plugin.query(json!({"queryType": "logs_volume"}), 1_795_296_000, 1_795_299_600).await);
    assert!(hour.iter().all(|f| f.rows() == 61), "{:?}", hour.iter().map(DecodedFrame::rows).collect::<Vec<_>>());
    assert_eq!(volume_counts(&hour), [("error".to_string(), 2), ("info".to_string(), 36)]);
    // nothing in the range: "no data"
    let none = ok("empty", plugin.query(json!({"queryType": "logs_volume"}), FROM, FROM + 60).await);
    assert!(none.iter().all(|f| f.fields.is_empty()));
}

#[tokio::test]
async fn log_context_gives_the_events_before_and_after_a_line_in_its_session() {
    let plugin = plugin().await;
    let context = |direction: &str, limit: u32, sequence: Option<i64>, time: i64| {
        let mut q = json!({"queryType": "log_context", "sessionId": TOOLS_SESSION, "time": time, "direction": direction, "limit": limit});
        if let Some(s) = sequence {
            q["sequence"] = json!(s);
        }
        q
    };
    // Explore's BACKWARD and FORWARD, from event 13; the range does not matter
    let before = ok("before", plugin.query(context("BACKWARD", 3, Some(13), EVENT_13_MS), FROM, FROM + 1).await);
    assert_eq!(before[0].frame_type(), "log-lines");
    assert_eq!(sequences(&before[0]), [12, 11, 10]);
    let after = ok("after", plugin.query(context("FORWARD", 3, Some(13), EVENT_13_MS), FROM, FROM + 1).await);
    assert_eq!(sequences(&after[0]), [14, 15, 16]);
    // events 5 and 6 share a millisecond: the sequence orders them
    let tie = ok("tie", plugin.query(context("before", 5, Some(6), 1_795_296_768_028), FROM, TO).await);
    assert_eq!(sequences(&tie[0]), [5, 4, 3, 2, 1]);
    // without a sequence, by time alone; around includes the point itself
    let around = ok("around", plugin.query(context("around", 2, None, EVENT_13_MS), FROM, TO).await);
    assert_eq!(sequences(&around[0]), [14, 13, 12, 11]);
    // the first and last events have nothing on one side
    let first = ok("first", plugin.query(context("before", 5, Some(0), 1_795_296_767_571), FROM, TO).await);
    assert!(first[0].fields.is_empty());
    let last = ok("last", plugin.query(context("after", 5, Some(34), 1_795_296_768_864), FROM, TO).await);
    assert!(last[0].fields.is_empty());
    // the lines are the logs query's lines, other sessions' events never among them
    assert!(before[0].field("session_id").strs().iter().all(|s| s == TOOLS_SESSION));
    assert_eq!(before[0].field("event_name").strs(), ["tool_result", "api_request", "tool_decision"]);

    // a span stands for its session and start: the Edit tool's span started at …768.256
    let span = json!({"queryType": "log_context", "spanId": EDIT_SPAN, "direction": "around", "limit": 2});
    assert_eq!(sequences(&ok("span", plugin.query(span, FROM, TO).await)[0]), [15, 14, 13, 12]);
    let unknown = json!({"queryType": "log_context", "spanId": "0000000000000000"});
    assert!(ok("unknown span", plugin.query(unknown, FROM, TO).await)[0].fields.is_empty());

    // a context without its point is the query's fault, named
    let r = plugin.query(json!({"queryType": "log_context", "sessionId": TOOLS_SESSION}), FROM, TO).await;
    assert_eq!((r.status, r.error_source.as_str()), (400, "downstream"));
    assert!(r.error.contains("sessionId and time"), "{}", r.error);
    let r = plugin.query(json!({"queryType": "log_context", "sessionId": TOOLS_SESSION, "time": "soon"}), FROM, TO).await;
    assert!(r.error.contains("\"soon\" is not a number"), "{}", r.error);
}

#[tokio::test]
async fn trace_search_lists_interactions_with_what_happened_in_them() {
    let plugin = plugin().await;
    let frames = ok("traces", plugin.query(json!({"queryType": "traces"}), FROM, TO).await);
    let t = &frames[0];
    // newest first: the exhaust run came after the tools run
    assert_eq!(t.field("trace_id").strs(), [EXHAUST_TRACE, TOOLS_TRACE]);
    assert_eq!(t.field("session_id").strs(), [EXHAUST_SESSION, TOOLS_SESSION]);
    assert_eq!(t.field("model_calls").i64s(), [1, 7]);
    assert_eq!(t.field("tool_calls").i64s(), [0, 6]);
    assert_eq!(t.field("tools").values, [Value::Null, json!("Bash, Edit, Read, Write")]);
    assert_eq!(t.field("errors").i64s(), [1, 0]);
    let cost = t.field("cost_usd").f64s();
    assert_eq!(cost[0], 0.0);
    assert!((cost[1] - 0.048449).abs() < 1e-12, "{cost:?}");
    let duration = t.field("duration_ms").f64s();
    assert!((duration[0] - 2120.241735).abs() < 1e-3 && (duration[1] - 1200.432732).abs() < 1e-3, "{duration:?}");
    assert_eq!(t.field("prompt").strs()[1], "Run echo, read and edit @notes.txt, write summary.md, commit and open a PR.");
    assert_eq!(t.field("cost_usd").config["unit"], "currencyUSD");
    assert_eq!(t.field("duration_ms").config["unit"], "ms");

    // filters: errors only, a tool, a minimum duration, a session
    let search = |filters: Value| {
        let mut q = json!({"queryType": "traces"});
        q.as_object_mut().unwrap().extend(filters.as_object().unwrap().clone());
        q
    };
    let ids = |frames: Vec<DecodedFrame>| -> Vec<String> {
        frames[0].fields.first().map(|_| frames[0].field("trace_id").strs()).unwrap_or_default()
    };
    let run = |q: Value| plugin.query(q, FROM, TO);
    assert_eq!(ids(ok("errors", run(search(json!({"errorsOnly": true}))).await)), [EXHAUST_TRACE]);
    assert_eq!(ids(ok("tool", run(search(json!({"tool": "Bash"}))).await)), [TOOLS_TRACE]);
    assert_eq!(ids(ok("duration", run(search(json!({"minDurationMs": 1500}))).await)), [EXHAUST_TRACE]);
    assert_eq!(ids(ok("session", run(search(json!({"sessions": [TOOLS_SESSION]}))).await)), [TOOLS_TRACE]);
    assert_eq!(ids(ok("limit", run(search(json!({"limit": 1}))).await)), [EXHAUST_TRACE]);
    assert!(ids(ok("nothing", run(search(json!({"tool": "Bash", "errorsOnly": true}))).await)).is_empty());
}

/// The link titled `title` of a field, as Grafana's decoder passes its config on.
fn link<'a>(frame: &'a DecodedFrame, field: &str, title: &str) -> &'a Value {
    let links = frame.field(field).config["links"].as_array().unwrap_or_else(|| panic!("{field} has no links"));
    links.iter().find(|l| l["title"] == title).unwrap_or_else(|| panic!("{field}: no link {title:?} in {links:?}"))
}

/// An internal link's query with `${__value.raw}` replaced, as Grafana fills it in.
fn follow(link: &Value, value: &str) -> Value {
    assert_eq!(link["internal"]["datasourceUid"], "claudecode", "links go back to the datasource that answered");
    let text = link["internal"]["query"].to_string().replace("${__value.raw}", value);
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn every_id_links_to_what_it_names() {
    let plugin = plugin().await;
    // trace search: the trace id opens the trace, the session its dashboard and events
    let traces = ok("traces", plugin.query(json!({"queryType": "traces"}), FROM, TO).await);
    let trace = follow(link(&traces[0], "trace_id", "Trace"), TOOLS_TRACE);
    let spans = ok("trace", plugin.query(trace, FROM, TO).await);
    assert_eq!(spans[0].rows(), 26, "every span of the tools trace");
    let dashboard = link(&traces[0], "session_id", "Sessions dashboard");
    assert_eq!(dashboard["url"], "/d/claude-code-sessions/claude-code-sessions?var-session=${__value.raw}&${__url_time_range}");
    assert!(dashboard.get("internal").is_none());
    let events = follow(link(&traces[0], "session_id", "Session events"), TOOLS_SESSION);
    assert_eq!(ok("session events", plugin.query(events, FROM, TO).await)[0].rows(), 35);

    // logs: session, prompt and trace ids
    let logs = ok("logs", plugin.query(json!({"queryType": "logs", "sessions": [EXHAUST_SESSION]}), FROM, TO).await);
    let prompt = logs[0].field("prompt_id").strs()[0].clone();
    let by_prompt = follow(link(&logs[0], "prompt_id", "Trace of this prompt"), &prompt);
    let spans = ok("prompt trace", plugin.query(by_prompt, FROM, TO).await);
    assert_eq!(spans[0].field("traceID").strs()[0], EXHAUST_TRACE);
    link(&logs[0], "trace_id", "Trace");
    link(&logs[0], "session_id", "Sessions dashboard");
    // names that are not ids have none
    assert!(logs[0].field("model").config.get("links").is_none());

    // the trace view: a span's link gives its session's events around it, and only the span id
    // carries a link (Grafana takes the first field with links as the span's logs link)
    let trace = ok("trace", plugin.query(json!({"queryType": "trace", "traceId": TOOLS_TRACE}), FROM, TO).await);
    let with_links: Vec<&str> = trace[0].fields.iter().filter(|f| f.config.get("links").is_some()).map(|f| f.name.as_str()).collect();
    assert_eq!(with_links, ["spanID"]);
    let around = follow(link(&trace[0], "spanID", "Session events around this span"), EDIT_SPAN);
    let lines = ok("span events", plugin.query(around, FROM, TO).await);
    assert_eq!(sequences(&lines[0]).len(), 100.min(35), "50 on each side of the span: the whole session");

    // raw SQL columns named like ids link too
    let sql = json!({"queryType": "sql", "rawSql": "SELECT DISTINCT session_id FROM events"});
    let rows = ok("sql", plugin.query(sql, FROM, TO).await);
    link(&rows[0], "session_id", "Session events");
}
