//! Content by role: prompts, responses, tool details, commands, file paths, raw API bodies and
//! error messages reach only the roles the datasource allows (`contentRole`, default Admin).
//! Every catalog query and every panel, variable and annotation of both dashboards is asked as a
//! Viewer, an Editor and an Admin over fixtures with all of it logged: below the role no content
//! value appears anywhere in a frame and every number is the same; raw SQL cannot reach the
//! tables by any spelling; variables, live tails and the local API follow the same rule.
mod common;

use std::collections::BTreeSet;

use common::test_fixtures::{run, run_v332, transcript_run, Fixture};
use common::{plugin_context_for, DecodedFrame, Plugin, QueryResult};
use gpx_claudecode::store::masked::{CONTENT_KEYS, MARKER};
use grafana_plugin_sdk::pluginv2;
use serde_json::{json, Value};

const FROM: i64 = 1_700_000_000;
const TO: i64 = 1_900_000_000;

/// Prompts (2.1.197 tools), errors (exhaust), assistant responses and tool inputs (2.1.332
/// multi-assistant), raw API bodies (tools-rawbodies), repositories and a subagent.
fn fixtures() -> Vec<Fixture> {
    [
        run("tools", "http/protobuf"),
        run("exhaust", "http/json"),
        run_v332("multi-assistant", "http/json"),
        run_v332("tools-rawbodies", "http/protobuf"),
        transcript_run("tools-repo-2.1.332"),
        transcript_run("subagent-2.1.332"),
    ]
    .concat()
}

/// Every string in an OTLP attribute value.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Walks decoded OTLP: the values of content keys (and span status messages) and of all others.
fn collect(node: &Value, content: &mut Vec<String>, other: &mut Vec<String>) {
    match node {
        Value::Array(items) => items.iter().for_each(|v| collect(v, content, other)),
        Value::Object(map) => {
            if let (Some(Value::String(key)), Some(value)) = (map.get("key"), map.get("value")) {
                let into = if CONTENT_KEYS.contains(&key.as_str()) { &mut *content } else { &mut *other };
                strings(value, into);
                return;
            }
            if let Some(Value::String(message)) = map.get("status").and_then(|s| s.get("message")) {
                content.push(message.clone());
            }
            map.values().for_each(|v| collect(v, content, other));
        }
        _ => {}
    }
}

/// The content the fixtures carry: values of content keys long enough to be recognised, logged
/// (not Claude Code's own `<REDACTED>`) and not also the value of some other key.
fn secrets(fixtures: &[Fixture]) -> Vec<String> {
    let (mut content, mut other) = (Vec::new(), Vec::new());
    for f in fixtures {
        let stem = f.file.split('.').next().unwrap();
        let text = std::fs::read_to_string(f.root.join(format!("{stem}.decoded.json"))).unwrap();
        collect(&serde_json::from_str(&text).unwrap(), &mut content, &mut other);
    }
    let other: BTreeSet<String> = other.into_iter().collect();
    let found: BTreeSet<String> = content.into_iter().filter(|s| s.len() >= 8 && s != "<REDACTED>" && !other.contains(s)).collect();
    found.into_iter().collect()
}

/// Every string in `value`, and in the JSON documents strings hold (unescaped).
fn deep_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            if let Ok(inner @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(s) {
                deep_strings(&inner, out);
            }
            out.push(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|v| deep_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| deep_strings(v, out)),
        _ => {}
    }
}

/// Every string in a frame as Grafana's server sends it (values, labels, JSON fields, meta).
fn frame_strings(frame: &DecodedFrame) -> Vec<String> {
    let mut out = Vec::new();
    deep_strings(&frame.report["frameJSON"], &mut out);
    deep_strings(&frame.meta, &mut out);
    out
}

/// The secrets among `texts`.
fn found<'s>(texts: &[String], secrets: &'s [String]) -> Vec<&'s str> {
    secrets.iter().filter(|s| texts.iter().any(|t| t.contains(s.as_str()))).map(String::as_str).collect()
}

/// The content values a result shows.
fn shown<'s>(r: &QueryResult, secrets: &'s [String]) -> Vec<&'s str> {
    let texts: Vec<String> = r.frames.iter().flat_map(frame_strings).collect();
    found(&texts, secrets)
}

/// Each frame's fields that are not text, with their values: what no role may change.
fn numbers(r: &QueryResult) -> Vec<Vec<(String, Vec<Value>)>> {
    r.frames
        .iter()
        .map(|f| {
            f.fields
                .iter()
                .filter(|d| d.grafana_type != "string" && d.grafana_type != "other")
                .map(|d| (d.name.clone(), d.values.clone()))
                .collect()
        })
        .collect()
}

/// Each frame's text and JSON fields, with their values.
fn texts(r: &QueryResult) -> Vec<Vec<(String, Vec<Value>)>> {
    r.frames
        .iter()
        .map(|f| {
            f.fields
                .iter()
                .filter(|d| d.grafana_type == "string" || d.grafana_type == "other")
                .map(|d| (d.name.clone(), d.values.clone()))
                .collect()
        })
        .collect()
}

/// Equal numbers, up to the last bits of a sum DuckDB adds up in another order.
fn assert_same_numbers(a: &[Vec<(String, Vec<Value>)>], b: &[Vec<(String, Vec<Value>)>], what: &str) {
    let close = |x: &Value, y: &Value| match (x.as_f64(), y.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300),
        _ => x == y,
    };
    let same = a.len() == b.len()
        && a.iter().zip(b).all(|(fa, fb)| {
            fa.len() == fb.len()
                && fa
                    .iter()
                    .zip(fb)
                    .all(|((na, va), (nb, vb))| na == nb && va.len() == vb.len() && va.iter().zip(vb).all(|(x, y)| close(x, y)))
        });
    assert!(same, "{what}: the numbers differ");
}

fn shape(r: &QueryResult) -> Vec<(Vec<String>, usize)> {
    r.frames.iter().map(|f| (f.fields.iter().map(|d| d.name.clone()).collect(), f.rows())).collect()
}

/// The queries: the catalog's example of every query type and everything both dashboards ask.
async fn queries(plugin: &Plugin, session: &str, prompt: &str, time_ms: f64) -> Vec<(String, Value)> {
    let mut out = common::catalog_examples(plugin, session, prompt, time_ms).await;
    assert_eq!(out.len(), 34);
    for file in ["dashboards/overview.json", "dashboards/sessions.json"] {
        let dash = common::read_repo_json(file);
        for v in dash["templating"]["list"].as_array().unwrap().iter().filter(|v| v["type"] == "query") {
            out.push((format!("{file} variable {}", v["name"]), common::interpolate(&v["query"], None, None, session)));
        }
        for a in dash["annotations"]["list"].as_array().unwrap() {
            out.push((format!("{file} annotation {}", a["name"]), common::interpolate(&a["target"], None, None, session)));
        }
        for p in dash["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().unwrap() {
                out.push((format!("{file} panel {}", p["title"]), common::interpolate(t, None, None, session)));
            }
        }
    }
    out
}

#[tokio::test]
async fn content_reaches_only_the_roles_the_datasource_allows() {
    let plugin = Plugin::start().await;
    let fixtures = fixtures();
    plugin.ingest_http(&fixtures).await;
    let secrets = secrets(&fixtures);
    assert!(secrets.len() > 20, "{secrets:?}");

    let settings = json!({"contentRole": "Editor"});
    let viewer = plugin_context_for("Viewer", settings.clone());
    let editor = plugin_context_for("Editor", settings.clone());
    let admin = plugin_context_for("Admin", settings.clone());

    // a session, prompt and time with every kind of content (raw API bodies too), as an Admin finds them
    let ids = plugin
        .query_in(
            &admin,
            json!({"queryType": "sql", "rawSql": "SELECT session_id AS s, prompt_id AS p, epoch_ms(time) AS t FROM events \
                   WHERE event_name = 'user_prompt' AND prompt <> '<REDACTED>' AND trace_id IS NOT NULL \
                   AND session_id IN (SELECT session_id FROM events WHERE event_name = 'api_request_body') ORDER BY time LIMIT 1"}),
            FROM,
            TO,
        )
        .await;
    assert_eq!(ids.error, "");
    let (session, prompt) = (ids.frames[0].field("s").strs()[0].clone(), ids.frames[0].field("p").strs()[0].clone());
    let time_ms = ids.frames[0].field("t").f64s()[0];

    let mut shown_to_editors = BTreeSet::new();
    let mut compared = 0;
    for (what, mut q) in queries(&plugin, &session, &prompt, time_ms).await {
        let mut as_admin = plugin.query_in(&admin, q.clone(), FROM, TO).await;
        let as_editor = plugin.query_in(&editor, q.clone(), FROM, TO).await;
        let mut as_viewer = plugin.query_in(&viewer, q.clone(), FROM, TO).await;
        assert_eq!(as_admin.error, "", "{what}");
        // the Editor (the configured role) sees exactly what the Admin sees
        assert_eq!(as_editor.error, "", "{what}");
        assert_eq!(shape(&as_editor), shape(&as_admin), "{what}");
        assert_eq!(texts(&as_editor), texts(&as_admin), "{what}");
        assert_same_numbers(&numbers(&as_editor), &numbers(&as_admin), &what);
        shown_to_editors.extend(shown(&as_editor, &secrets));
        if q.get("search").is_some_and(|s| s.as_str().is_some_and(|s| !s.is_empty())) {
            // a search reads content: refused below the role, with what to do instead
            assert_eq!((as_viewer.status, as_viewer.error_source.as_str()), (400, "downstream"), "{what}");
            assert!(
                as_viewer.error.contains("Editors and above") && as_viewer.error.contains("filter by event"),
                "{what}: {}",
                as_viewer.error
            );
            // without the search, as for everyone
            q.as_object_mut().unwrap().remove("search");
            as_admin = plugin.query_in(&admin, q.clone(), FROM, TO).await;
            as_viewer = plugin.query_in(&viewer, q.clone(), FROM, TO).await;
        }
        assert_eq!(as_viewer.error, "", "{what}");
        let leaked = shown(&as_viewer, &secrets);
        assert!(leaked.is_empty(), "{what} shows a Viewer {leaked:?}");
        // counts, costs, tokens, durations, times: the same for every role, in the same shape
        assert_eq!(shape(&as_viewer), shape(&as_admin), "{what}");
        assert_same_numbers(&numbers(&as_viewer), &numbers(&as_admin), &what);
        compared += 1;
    }
    assert!(compared > 60, "{compared}");
    // and what Editors saw covers every kind of content
    for (kind, sample) in [
        ("a prompt", "Run echo, read and edit @notes.txt"),
        ("an assistant response", "I'll run a command first."),
        ("tool parameters", "\"full_command\":\"echo hello\""),
        ("a raw API body", "\"max_tokens\""),
    ] {
        assert!(shown_to_editors.iter().any(|s| s.contains(sample)), "{kind} ({sample}) never shown to an Editor");
    }

    // without the setting only Admins read content
    let default_editor = plugin_context_for("Editor", json!({}));
    let logs = json!({"queryType": "logs", "sessions": [session.clone()], "limit": 1000});
    let r = plugin.query_in(&default_editor, logs.clone(), FROM, TO).await;
    assert!(shown(&r, &secrets).is_empty());
    assert!(r.frames[0].field("body").strs().iter().any(|b| b.contains(&format!("prompt={MARKER}"))));
    let r = plugin.query_in(&plugin_context_for("Admin", json!({})), logs.clone(), FROM, TO).await;
    assert!(!shown(&r, &secrets).is_empty());
    // Grafana's "No basic role", and a request without a user, read as the lowest role
    for context in [plugin_context_for("None", settings.clone()), plugin_context_for("", settings.clone())] {
        let r = plugin.query_in(&context, logs.clone(), FROM, TO).await;
        assert_eq!(r.error, "");
        assert!(shown(&r, &secrets).is_empty());
    }
    // filters on content are refused too; others work
    let filtered = json!({"queryType": "logs", "adhocFilters": [{"key": "prompt", "operator": "=~", "value": ".*echo.*"}]});
    let r = plugin.query_in(&viewer, filtered.clone(), FROM, TO).await;
    assert!(r.status == 400 && r.error.contains("the filter on \"prompt\" reads content"), "{}", r.error);
    assert_eq!(plugin.query_in(&editor, filtered, FROM, TO).await.error, "");

    // the variables resource: content keys refused, the rest as before
    let values = |context: pluginv2::PluginContext, key: &'static str| {
        let plugin = &plugin;
        async move {
            let r = plugin.call_resource_in(&context, "GET", &format!("variables?key={key}"), &[], vec![]).await;
            (r.code, String::from_utf8_lossy(&r.body).to_string())
        }
    };
    let (code, body) = values(viewer.clone(), "prompt").await;
    assert!(code == 403 && body.contains("Editors and above"), "{code} {body}");
    let (code, body) = values(editor.clone(), "prompt").await;
    assert!(code == 200 && secrets.iter().any(|s| body.contains(s.as_str())), "{code} {body}");
    let (code, body) = values(viewer.clone(), "tool").await;
    assert!(code == 200 && body.contains("Bash"), "{code} {body}");
}

#[tokio::test]
async fn raw_sql_below_the_role_cannot_reach_content_by_any_spelling() {
    let plugin = Plugin::start().await;
    let fixtures = fixtures();
    plugin.ingest_http(&fixtures).await;
    let secrets = secrets(&fixtures);
    let viewer = plugin_context_for("Viewer", json!({}));
    let admin = plugin_context_for("Admin", json!({}));
    let sql = |text: &str| json!({"queryType": "sql", "rawSql": text, "format": "table"});

    // over the masked views: rows, content hidden, the rest as stored
    for text in [
        "SELECT * FROM events",
        "SELECT * FROM events_full",
        "SELECT * FROM spans",
        "SELECT * FROM spans_full",
        "SELECT * FROM masked.events_full",
        "SELECT prompt, tool_parameters, error, attributes FROM events WHERE prompt IS NOT NULL OR error IS NOT NULL",
        "SELECT json_extract_string(attributes, '$.response') AS r, attributes->>'prompt_text' AS p, attributes->>'body' AS b FROM events",
        "SELECT json_extract(attributes, '$.tool_input') AS i, json_keys(attributes) AS k FROM events_full",
        "SELECT events, status_message, attributes->>'full_command' AS c FROM spans",
        "SELECT string_agg(prompt, '|') AS all_prompts, max(error) AS e FROM events",
        "SUMMARIZE events",
        "SELECT t.key, t.value FROM events_full, json_each(attributes) AS t",
        "WITH e AS (SELECT * FROM events) SELECT * FROM e",
    ] {
        let r = plugin.query_in(&viewer, sql(text), FROM, TO).await;
        assert_eq!(r.error, "", "{text}");
        assert!(r.frames[0].rows() > 0, "{text}");
        let leaked = shown(&r, &secrets);
        assert!(leaked.is_empty(), "{text} shows a Viewer {leaked:?}");
        // the Admin's answer to the same SQL shows content (SUMMARIZE only the ends of each
        // column; the masked views hide it from everyone)
        if !text.starts_with("SUMMARIZE") && !text.contains("masked.") {
            assert!(!shown(&plugin.query_in(&admin, sql(text), FROM, TO).await, &secrets).is_empty(), "{text}");
        }
    }
    let r = plugin
        .query_in(&viewer, sql("SELECT prompt FROM events WHERE event_name = 'user_prompt' AND prompt <> '<REDACTED>'"), FROM, TO)
        .await;
    assert!(r.frames[0].field("prompt").strs().iter().all(|p| p == MARKER));

    // past them: refused, saying why
    for text in [
        "SELECT * FROM main.events",
        "SELECT * FROM main.events_full",
        "SELECT * FROM MAIN.spans",
        "SELECT * FROM claudecode.events",
        "SELECT * FROM claudecode.main.events",
        "SELECT * FROM \"main\".\"events\"",
        "SELECT (SELECT max(prompt) FROM main.events) AS p",
        "SELECT * FROM events WHERE prompt IN (SELECT prompt FROM main.events)",
        "WITH e AS (SELECT * FROM main.spans) SELECT * FROM e",
        "SELECT * FROM query_table('events')",
        "SELECT * FROM query('SELECT prompt FROM main.events')",
        "SELECT * FROM pragma_storage_info('events')",
        "SUMMARIZE main.events",
        "DESCRIBE main.events",
        "SELECT * FROM temp.main.events",
        "SELECT * FROM system.main.duckdb_tables()",
    ] {
        let r = plugin.query_in(&viewer, sql(text), FROM, TO).await;
        assert_eq!(r.status, 400, "{text} was answered");
        assert!(r.error.contains("Admins and above"), "{text}: {}", r.error);
    }
    // the same for an Admin: the tables themselves
    let r = plugin.query_in(&admin, sql("SELECT max(prompt) AS p FROM main.events WHERE prompt <> '<REDACTED>'"), FROM, TO).await;
    assert_eq!(r.error, "");
    assert!(!shown(&r, &secrets).is_empty());
    // catalog metadata and the tables without content stay open
    for text in [
        "SELECT table_schema, table_name FROM information_schema.tables",
        "SELECT * FROM duckdb_columns()",
        "SELECT * FROM rollup_session_events",
    ] {
        let r = plugin.query_in(&viewer, sql(text), FROM, TO).await;
        assert_eq!(r.error, "", "{text}");
    }
}

#[tokio::test]
async fn the_local_api_reads_as_a_viewer() {
    let plugin = Plugin::start().await;
    let fixtures = fixtures();
    plugin.ingest_http(&fixtures).await;
    let secrets = secrets(&fixtures);
    let url = gpx_claudecode::api::local_url(&plugin.http_addr).unwrap();
    let client = reqwest::Client::new();
    let query = |q: Value| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let body = json!({"query": q, "fromMs": FROM * 1000, "toMs": TO * 1000});
            let r = client
                .post(format!("{url}/api/v1/query"))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap())
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, text) = query(json!({"queryType": "logs", "limit": 5000})).await;
    assert_eq!(status, 200, "{text}");
    let mut texts = Vec::new();
    deep_strings(&serde_json::from_str(&text).unwrap(), &mut texts);
    assert!(texts.iter().any(|t| t.contains(MARKER)));
    assert_eq!(found(&texts, &secrets), Vec::<&str>::new(), "the local API shows content");
    let (status, text) = query(json!({"queryType": "sql", "rawSql": "SELECT * FROM main.events"})).await;
    assert!(status == 400 && text.contains("Admins and above"), "{status} {text}");
    // an export of a session is its records with content hidden
    let sessions = plugin
        .query(
            json!({"queryType": "sql", "rawSql": "SELECT DISTINCT session_id AS s FROM events WHERE event_name = 'user_prompt' AND prompt <> '<REDACTED>'"}),
            FROM,
            TO,
        )
        .await;
    let ids = sessions.frames[0].field("s").strs();
    assert!(!ids.is_empty());
    for id in ids {
        let r = client.get(format!("{url}/api/v1/export")).query(&[("session", id.as_str())]).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let text = r.text().await.unwrap();
        let mut texts = Vec::new();
        for line in text.lines() {
            deep_strings(&serde_json::from_str(line).unwrap(), &mut texts);
        }
        assert!(texts.iter().any(|t| t.contains(MARKER)), "{id}");
        assert_eq!(found(&texts, &secrets), Vec::<&str>::new(), "{id}");
    }
}
