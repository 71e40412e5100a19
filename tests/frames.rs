//! Every kind of frame the plugin returns, read by Grafana's own decoder (grafana-plugin-sdk-go
//! `data`, `../shared/grafana/frame-decoder`), and checked against what Grafana's frontend needs
//! (`../shared/grafana/README.md`, "Frames Grafana expects"): the catalog example of every query
//! type, every target and annotation of both bundled dashboards (variables at All and at one real
//! value), empty results, errors, and a raw SQL column of every DuckDB type.
mod common;

use common::test_fixtures::{run, transcript_run};
use common::{DecodedField, DecodedFrame, Plugin, QueryResult};
use serde_json::{json, Value};

const FROM: i64 = 1_700_000_000;
const TO: i64 = 1_900_000_000;

/// The data-plane type each query type's frames carry (`None`: the trace, which has no
/// data-plane type and is marked by `preferredVisualisationType` instead).
fn expected_types(q: &Value) -> &'static [&'static str] {
    let table = q["format"] == "table";
    match q["queryType"].as_str().unwrap_or_default() {
        "stat" => &["numeric-wide"],
        "breakdown" | "api_latency" | "api_errors" | "cost_by_model" if !table => &["timeseries-wide"],
        "sql" if q["format"] == "time_series" => &["timeseries-wide"],
        "sql" if q["format"] == "logs" => &["log-lines"],
        "logs" | "log_context" | "live" => &["log-lines"],
        "logs_volume" => &["timeseries-multi"],
        "trace" => &[""],
        // listings with times, JSON or only text
        "sessions" | "session_timeline" | "prompts" | "traces" | "annotations" | "variable" | "tool_errors" | "repositories" | "skills"
        | "plugins" | "managed_settings" | "fleet" | "budget" | "usage_windows" | "usage_report" => &["table"],
        "sql" => &["numeric-long", "table"],
        _ => &["numeric-long"],
    }
}

/// What Grafana displays as a field's name for the frames here (grafana-data
/// `getFieldDisplayName` for fields without `config.displayName`, which no frame sets):
/// `displayNameFromDS`, else the name followed by the value of a single label or all labels.
fn display_name(field: &DecodedField) -> String {
    if let Some(name) = field.config["displayNameFromDS"].as_str() {
        return name.to_string();
    }
    let labels: Vec<String> = field.labels.as_object().into_iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    if labels.is_empty() {
        field.name.clone()
    } else {
        format!("{} {{{}}}", field.name, labels.join(", "))
    }
}

/// Checks one frame of a query against Grafana's frontend rules.
fn assert_frame(what: &str, q: &Value, frame: &DecodedFrame) {
    let frame_type = frame.frame_type();
    assert!(expected_types(q).contains(&frame_type), "{what}: meta.type {frame_type:?}, expected {:?}", expected_types(q));
    if !frame_type.is_empty() {
        assert!(frame.meta["typeVersion"].is_array(), "{what}: typeVersion");
    }
    assert!(frame.meta["executedQueryString"].is_string(), "{what}: query inspector");
    for f in &frame.fields {
        assert!(f.config.get("displayName").is_none(), "{what}: {} sets displayName", f.name);
        if f.is_number() && q["queryType"] != "sql" {
            assert!(f.config["unit"].is_string(), "{what}: {} has no unit (labels {})", f.name, f.labels);
        }
    }
    if frame.fields.is_empty() {
        return;
    }
    match frame_type {
        "timeseries-wide" => {
            assert_eq!(frame.time_series_schema, "wide", "{what}");
            assert!(frame.fields[0].is_time() && frame.fields[1..].iter().all(DecodedField::is_number), "{what}");
            assert!(frame.fields[0].labels.as_object().is_none_or(|l| l.is_empty()), "{what}: the time field has no labels");
        }
        "timeseries-multi" => {
            // one series per frame: Explore's logs volume colours each frame by its `level` label
            assert_eq!(frame.fields.len(), 2, "{what}");
            assert!(frame.fields[0].is_time() && frame.fields[1].is_number(), "{what}");
            assert!(frame.fields[1].labels["level"].is_string(), "{what}: a level label");
        }
        "numeric-wide" => {
            assert_eq!(frame.rows(), 1, "{what}");
            assert!(frame.fields.iter().all(DecodedField::is_number), "{what}");
        }
        "numeric-long" => {
            assert!(frame.fields.iter().all(|f| f.is_number() || f.grafana_type == "string" || f.grafana_type == "boolean"), "{what}");
            assert!(frame.fields.iter().any(DecodedField::is_number), "{what}");
        }
        "log-lines" => {
            let types: Vec<(&str, &str)> = frame.fields.iter().take(2).map(|f| (f.name.as_str(), f.grafana_type.as_str())).collect();
            assert_eq!(types, [("timestamp", "time"), ("body", "string")], "{what}");
            assert!(frame.fields[0].values.iter().chain(&frame.fields[1].values).all(|v| !v.is_null()), "{what}: no null time or body");
            if q["queryType"] == "logs" || q["queryType"] == "log_context" {
                assert_eq!(frame.field("severity").grafana_type, "string", "{what}");
                assert_eq!(frame.field("id").grafana_type, "string", "{what}");
                let labels = frame.field("labels");
                assert_eq!(labels.grafana_type, "other", "{what}: labels as JSON");
                assert!(labels.values.iter().all(Value::is_object), "{what}: labels are objects");
            }
        }
        "" => {
            assert_eq!(frame.meta["preferredVisualisationType"], "trace", "{what}");
            for name in ["serviceTags", "tags", "logs", "references"] {
                let f = frame.field(name);
                assert_eq!(f.grafana_type, "other", "{what}: {name} as JSON");
                assert!(f.values.iter().all(Value::is_array), "{what}: {name} are arrays");
            }
            for name in ["traceID", "spanID", "parentSpanID", "operationName", "serviceName", "kind", "statusMessage"] {
                assert_eq!(frame.field(name).grafana_type, "string", "{what}: {name}");
            }
            for name in ["startTime", "duration", "statusCode"] {
                assert!(frame.field(name).is_number(), "{what}: {name}");
            }
        }
        _ => {}
    }
}

/// Runs queries in one QueryData call (as a dashboard refresh sends them) and checks each
/// response: no error, and every frame Grafana-valid.
async fn check_all(plugin: &Plugin, cases: &[(String, Value)], from: i64, to: i64) -> Vec<QueryResult> {
    let queries: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, (_, q))| {
            let mut q = q.clone();
            q["refId"] = json!(format!("Q{i}"));
            q
        })
        .collect();
    let mut results = plugin.query_many(queries, from, to).await;
    cases
        .iter()
        .enumerate()
        .map(|(i, (what, q))| {
            let r = results.remove(&format!("Q{i}")).unwrap_or_else(|| panic!("{what}: no response"));
            assert_eq!((r.error.as_str(), r.error_source.as_str()), ("", ""), "{what}");
            assert!(!r.frames.is_empty(), "{what}: at least one frame");
            for frame in &r.frames {
                assert_frame(what, q, frame);
            }
            r
        })
        .collect()
}

#[tokio::test]
async fn every_frame_decodes_as_grafana_shows_it() {
    let plugin = Plugin::start().await;
    plugin
        .ingest_http(&[run("tools", "http/protobuf"), run("exhaust", "http/json"), run("error-cumulative", "http/protobuf")].concat())
        .await;
    // Claude Code 2.1.332: repository attributes, a subagent, plugins, managed settings
    plugin.ingest_http(&[transcript_run("tools-repo-2.1.332"), transcript_run("subagent-2.1.332")].concat()).await;
    let ids = plugin
        .query(
            json!({"queryType": "sql", "rawSql": "SELECT arg_max(session_id, time) AS s, arg_max(prompt_id, time) AS p, epoch_ms(max(time)) AS t FROM events WHERE prompt_id IS NOT NULL"}),
            FROM,
            TO,
        )
        .await;
    let session = ids.frames[0].field("s").strs()[0].clone();
    let prompt = ids.frames[0].field("p").strs()[0].clone();
    let last_prompt_ms = ids.frames[0].field("t").f64s()[0];

    // the catalog example of every query type, from the resource the query editor reads
    let examples = common::catalog_examples(&plugin, &session, &prompt, last_prompt_ms).await;
    assert_eq!(examples.len(), 34);
    let results = check_all(&plugin, &examples, FROM, TO).await;
    for ((what, _), r) in examples.iter().zip(&results) {
        // the fixtures have no failed tool call, no "timeout" in the logs example's search, and
        // no captured run used an MCP tool or a skill, and no budget is set
        // a live tail starts empty: its lines come through Grafana Live (tests/live.rs)
        let without_data = ["tool_errors", "logs", "mcp", "skills", "budget", "live"].map(|t| format!("example \"{t}\""));
        if !without_data.contains(what) {
            assert!(r.frames.iter().any(|f| f.rows() > 0), "{what}: the fixtures give it data");
        }
    }
    // the same over a range without data: "no data" frames, still typed
    let empty = check_all(&plugin, &examples, 100_000, 200_000).await;
    for ((what, _), r) in examples.iter().zip(&empty) {
        // a trace by id and a session's log context do not depend on the range
        let ranged = !what.contains("\"trace\"") && !what.contains("log_context") && !what.contains("\"live\"");
        if ranged && !what.contains("stat") && !what.contains("\"sql\"") {
            assert!(r.frames.iter().all(|f| f.fields.is_empty()), "{what}: no data over an empty range");
        }
    }

    // every target and annotation of both dashboards, variables at All and at one real value
    for file in ["dashboards/overview.json", "dashboards/sessions.json"] {
        let dash = common::read_repo_json(file);
        for (team, model) in [(None, None), (Some("platform"), Some("claude-opus-4-8"))] {
            let mut cases = Vec::new();
            for v in dash["templating"]["list"].as_array().unwrap().iter().filter(|v| v["type"] == "query") {
                cases.push((format!("{file} variable {}", v["name"]), common::interpolate(&v["query"], team, model, &session)));
            }
            for a in dash["annotations"]["list"].as_array().unwrap() {
                cases.push((format!("{file} annotation {}", a["name"]), common::interpolate(&a["target"], team, model, &session)));
            }
            let mut panels = Vec::new();
            for p in dash["panels"].as_array().unwrap() {
                for t in p["targets"].as_array().unwrap() {
                    cases.push((format!("{file} {} ({team:?}, {model:?})", p["title"]), common::interpolate(t, team, model, &session)));
                    panels.push(p.clone());
                }
            }
            let results = check_all(&plugin, &cases, FROM, TO).await;
            if team.is_some() {
                continue;
            }
            // at All every panel has data: what it matches must be a name Grafana displays
            let panel_results = &results[results.len() - panels.len()..];
            for (p, r) in panels.iter().zip(panel_results) {
                let title = format!("{file} {}", p["title"]);
                let numbers: Vec<String> =
                    r.frames.iter().flat_map(|f| f.fields.iter().filter(|x| x.is_number())).map(display_name).collect();
                match p["type"].as_str().unwrap() {
                    "stat" | "bargauge" | "piechart" | "gauge" => {
                        assert!(!numbers.is_empty(), "{title}: no number to show");
                        let pattern = p["options"]["reduceOptions"]["fields"].as_str().unwrap_or_default();
                        if let Some(regex) = pattern.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
                            let regex = regex::Regex::new(regex).unwrap();
                            assert!(numbers.iter().any(|n| regex.is_match(n)), "{title}: {pattern} matches none of {numbers:?}");
                        }
                        // all values: each row titled by its text fields, which needs them present
                        if p["options"]["reduceOptions"]["values"] == true {
                            assert!(r.frames[0].fields.iter().any(|f| f.grafana_type == "string"), "{title}: rows need their names");
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

#[tokio::test]
async fn errors_say_whose_fault_they_are() {
    let plugin = Plugin::start().await;
    plugin.ingest_http(&run("tools", "http/protobuf")).await;
    let cases = [
        json!({"queryType": "money"}),
        json!({"queryType": "stat"}),
        json!({"queryType": "sql", "rawSql": "SELECT nope FROM events"}),
        json!({"queryType": "sql", "rawSql": "DELETE FROM events"}),
        json!({"queryType": "stat", "measure": "cost", "adhocFilters": [{"key": "model", "operator": "=~", "value": "(unclosed"}]}),
    ];
    let results = plugin.query_many(cases.iter().enumerate().map(|(i, q)| with_ref(q, i)).collect(), FROM, TO).await;
    for (i, q) in cases.iter().enumerate() {
        let r = &results[&format!("Q{i}")];
        assert!(!r.error.is_empty(), "{q}");
        assert_eq!((r.status, r.error_source.as_str()), (400, "downstream"), "{q}: {}", r.error);
        assert!(r.frames.is_empty(), "{q}");
    }
    // a query that is not JSON at all
    let request = grafana_plugin_sdk::pluginv2::QueryDataRequest {
        plugin_context: Some(common::plugin_context()),
        headers: Default::default(),
        queries: vec![grafana_plugin_sdk::pluginv2::DataQuery {
            ref_id: "A".into(),
            json: b"{not json".to_vec(),
            time_range: Some(grafana_plugin_sdk::pluginv2::TimeRange { from_epoch_ms: 0, to_epoch_ms: 1 }),
            ..Default::default()
        }],
    };
    let r = &plugin.query_data(request).await.responses["A"];
    assert_eq!((r.status, r.error_source.as_str()), (400, "downstream"), "{}", r.error);
    // success carries no source
    let ok = plugin.query(json!({"queryType": "stat", "measure": "cost"}), FROM, TO).await;
    assert_eq!((ok.status, ok.error_source.as_str(), ok.error.as_str()), (200, "", ""));
}

fn with_ref(q: &Value, i: usize) -> Value {
    let mut q = q.clone();
    q["refId"] = json!(format!("Q{i}"));
    q
}

/// One column of every DuckDB type, through raw SQL, as Grafana's server decodes it.
#[tokio::test]
async fn raw_sql_keeps_every_duckdb_type() {
    let plugin = Plugin::start().await;
    let sql = r#"SELECT
        true AS bool, 1::TINYINT AS tinyint, 2::SMALLINT AS smallint, 3::INTEGER AS integer, 4::BIGINT AS bigint,
        5::UTINYINT AS utinyint, 6::USMALLINT AS usmallint, 7::UINTEGER AS uinteger, 18446744073709551615::UBIGINT AS ubigint,
        1.5::FLOAT AS float, 2.25::DOUBLE AS double,
        170141183460469231731687303715884105727::HUGEINT AS hugeint, 42::HUGEINT AS small_hugeint,
        340282366920938463463374607431768211455::UHUGEINT AS uhugeint,
        123456789012345678901234567890::BIGNUM AS bignum, 1.125::DECIMAL(18,3) AS decimal,
        12345678901234567890.12::DECIMAL(38,2) AS wide_decimal,
        'text' AS varchar, 'ab'::BLOB AS blob, '0101'::BIT AS bit, 'a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8'::UUID AS uuid,
        INTERVAL 90 MINUTE AS interval, TIME '12:00:01' AS time, TIMETZ '12:00:01+02' AS timetz,
        DATE '2026-01-02' AS date, TIMESTAMP '2026-01-02 03:04:05.5' AS timestamp, TIMESTAMPTZ '2026-01-02 03:04:05+00' AS timestamptz,
        TIMESTAMP_NS '2026-01-02 03:04:05.123456789' AS timestamp_ns, TIMESTAMP_MS '2026-01-02' AS timestamp_ms,
        TIMESTAMP_S '2026-01-02' AS timestamp_s, TIMESTAMP '2300-01-01' AS far_future,
        [1, 2] AS list, {'a': 1, 'b': 'x'} AS struct, MAP {'k': [1, 2]} AS map, [1, 2, 3]::INTEGER[3] AS array,
        '{"x": [1, {"y": null}]}'::JSON AS json, 'b'::ENUM ('a', 'b') AS enum, union_value(num := 2) AS "union",
        [{'a': [1]}] AS nested, NULL AS null, 1 AS dup, 2 AS dup"#;
    let r = plugin.query(json!({"queryType": "sql", "format": "table", "rawSql": sql}), FROM, TO).await;
    assert_eq!(r.error, "");
    let frame = &r.frames[0];
    let expect = [
        ("bool", "boolean", json!(true)),
        ("tinyint", "number", json!(1)),
        ("smallint", "number", json!(2)),
        ("integer", "number", json!(3)),
        ("bigint", "number", json!(4)),
        ("utinyint", "number", json!(5)),
        ("usmallint", "number", json!(6)),
        ("uinteger", "number", json!(7)),
        ("ubigint", "number", json!(18446744073709551615u64)),
        ("float", "number", json!(1.5)),
        ("double", "number", json!(2.25)),
        ("hugeint", "string", json!("170141183460469231731687303715884105727")),
        ("small_hugeint", "number", json!(42)),
        ("uhugeint", "string", json!("340282366920938463463374607431768211455")),
        ("bignum", "string", json!("123456789012345678901234567890")),
        ("decimal", "number", json!(1.125)),
        ("wide_decimal", "string", json!("12345678901234567890.12")),
        ("varchar", "string", json!("text")),
        ("blob", "string", json!("YWI=")),
        ("bit", "string", json!("0101")),
        ("uuid", "string", json!("a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8")),
        ("interval", "string", json!("01:30:00")),
        ("time", "string", json!("12:00:01")),
        ("timetz", "string", json!("12:00:01+02")),
        ("date", "time", json!(1_767_312_000_000i64)),
        ("timestamp", "time", json!(1_767_323_045_500i64)),
        ("timestamptz", "time", json!(1_767_323_045_000i64)),
        ("timestamp_ns", "time", json!(1_767_323_045_123i64)),
        ("timestamp_ms", "time", json!(1_767_312_000_000i64)),
        ("timestamp_s", "time", json!(1_767_312_000_000i64)),
        ("far_future", "time", json!(9_223_372_036_854i64)),
        ("list", "other", json!([1, 2])),
        ("struct", "other", json!({"a": 1, "b": "x"})),
        ("map", "other", json!({"k": [1, 2]})),
        ("array", "other", json!([1, 2, 3])),
        ("json", "other", json!({"x": [1, {"y": null}]})),
        ("enum", "string", json!("b")),
        ("union", "other", json!({"num": 2})),
        ("nested", "other", json!([{"a": [1]}])),
        ("null", "number", Value::Null),
        ("dup", "number", json!(1)),
        ("dup", "number", json!(2)),
    ];
    let got: Vec<(String, String, Value)> =
        frame.fields.iter().map(|f| (f.name.clone(), f.grafana_type.clone(), f.values.first().cloned().unwrap_or(Value::Null))).collect();
    let want: Vec<(String, String, Value)> = expect.iter().map(|(n, t, v)| (n.to_string(), t.to_string(), v.clone())).collect();
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    assert_eq!(got.len(), want.len());
    let notices: Vec<&str> = frame.meta["notices"].as_array().unwrap().iter().map(|n| n["text"].as_str().unwrap()).collect();
    for column in ["hugeint", "uhugeint", "bignum", "wide_decimal", "far_future"] {
        assert!(notices.iter().any(|n| n.starts_with(&format!("{column}:"))), "notice for {column}: {notices:?}");
    }
    assert_eq!(notices.len(), 5, "{notices:?}");
    assert_eq!(frame.frame_type(), "table");
    assert!(frame.fields.iter().all(|f| f.config.get("unit").is_none()), "raw SQL leaves units to the panel");

    // logs from raw SQL: the data plane's log lines
    let logs = plugin
        .query(
            json!({"queryType": "sql", "format": "logs", "rawSql": "SELECT TIMESTAMP '2026-01-02' AS t, 'line' AS msg, 'error' AS level, {'k': 'v'}::JSON AS labels, 7 AS n"}),
            FROM,
            TO,
        )
        .await;
    let f = &logs.frames[0];
    assert_eq!(f.frame_type(), "log-lines");
    let fields: Vec<(&str, &str)> = f.fields.iter().map(|x| (x.name.as_str(), x.grafana_type.as_str())).collect();
    assert_eq!(fields, [("timestamp", "time"), ("body", "string"), ("severity", "string"), ("labels", "other"), ("n", "number")]);
    let no_time = plugin.query(json!({"queryType": "sql", "format": "logs", "rawSql": "SELECT 'x' AS body"}), FROM, TO).await;
    assert!(no_time.error.contains("needs a time column"), "{}", no_time.error);
}
