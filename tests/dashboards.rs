//! plugin.json against Grafana's plugin schema, and every bundled dashboard: importable and
//! provisionable as is, and every panel's queries (plus variables and annotations) answered by the
//! backend on fixture data with frames of the shape the panel type needs.
mod common;

use common::test_fixtures::{fixture, run};
use common::{DecodedFrame, Plugin};
use serde_json::{json, Value};

const FROM: i64 = 1_700_000_000;
const TO: i64 = 1_900_000_000;
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read_json(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn plugin_json_matches_grafanas_schema_and_includes_every_dashboard() {
    let schema = std::fs::read_to_string(format!("{ROOT}/../shared/grafana/plugin.schema.json"))
        .or_else(|_| std::fs::read_to_string(std::env::var("GRAFANA_PLUGIN_SCHEMA").unwrap_or_default()))
        .expect("../shared/grafana/plugin.schema.json (or $GRAFANA_PLUGIN_SCHEMA)");
    let schema: Value = serde_json::from_str(&schema).unwrap();
    let validator = jsonschema::draft7::new(&schema).expect("schema compiles");
    let plugin = read_json("plugin.json");
    let errors: Vec<String> = validator.iter_errors(&plugin).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "plugin.json: {errors:#?}");
    assert_eq!(plugin["id"], "vibe-claudecode-datasource");
    assert_eq!(plugin["executable"], "gpx_claudecode");
    for key in ["backend", "alerting", "logs", "metrics", "annotations"] {
        assert_eq!(plugin[key], true, "{key}");
    }
    let mut included: Vec<String> =
        plugin["includes"].as_array().unwrap().iter().map(|i| i["path"].as_str().unwrap().to_string()).collect();
    included.sort();
    let mut on_disk: Vec<String> = std::fs::read_dir(format!("{ROOT}/dashboards"))
        .unwrap()
        .map(|e| format!("dashboards/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    on_disk.sort();
    assert_eq!(included, on_disk);
}

/// Replaces dashboard variables the way Grafana's frontend would for one chosen value.
fn interpolate(target: &Value, session: &str) -> Value {
    let text = target.to_string();
    let text = text
        .replace("${team:sqlstring}", "$__all")
        .replace("${model:sqlstring}", "$__all")
        .replace("${session}", session)
        .replace("$session", session);
    let mut q: Value = serde_json::from_str(&text).unwrap();
    q["refId"] = json!("A");
    q
}

fn is_number(f: &common::DecodedField) -> bool {
    ["Int", "UInt", "Float"].iter().any(|p| f.arrow_type.starts_with(p))
}

/// The frame shape each panel type needs.
fn assert_shape(panel_type: &str, what: &str, frames: &[DecodedFrame]) {
    let frame = frames.iter().find(|f| !f.fields.is_empty()).unwrap_or_else(|| panic!("{what}: no data"));
    assert!(frame.rows() > 0, "{what}: no rows");
    let time_first = frame.fields[0].arrow_type.contains("Timestamp");
    match panel_type {
        "timeseries" | "heatmap" => {
            assert!(time_first, "{what}: needs time first");
            assert!(frame.fields[1..].iter().all(is_number) && frame.fields.len() > 1, "{what}: numeric series");
        }
        "stat" | "bargauge" | "piechart" | "gauge" => assert!(frame.fields.iter().any(is_number), "{what}: needs a number"),
        "logs" => {
            assert!(time_first, "{what}: logs need time first");
            assert!(frame.fields.iter().any(|f| f.name == "body"), "{what}: logs need a body");
        }
        "table" => {}
        other => panic!("{what}: no shape rule for panel type {other}"),
    }
}

#[tokio::test]
async fn every_dashboard_panel_gets_data_of_its_shape() {
    let plugin = Plugin::start().await;
    let client = reqwest::Client::new();
    for f in [run("tools", "http/protobuf"), run("exhaust", "http/json"), run("error-cumulative", "http/protobuf")].concat() {
        let mut req = client.post(format!("http://{}/v1/{}", plugin.http_addr, f.signal)).header("content-type", &f.content_type);
        if let Some(e) = &f.content_encoding {
            req = req.header("content-encoding", e);
        }
        let resp = req.body(fixture(&f.file)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{}", f.file);
    }
    for file in ["dashboards/overview.json", "dashboards/sessions.json"] {
        let dash = read_json(file);
        assert!(dash.get("__inputs").is_none(), "{file}: no __inputs, so file provisioning works");
        let vars = dash["templating"]["list"].as_array().unwrap();
        assert!(vars.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "vibe-claudecode-datasource"));
        let ds = json!({"type": "vibe-claudecode-datasource", "uid": "${datasource}"});

        // variables first: their values feed the panels
        let mut session = String::new();
        for v in vars.iter().filter(|v| v["type"] == "query") {
            assert_eq!(v["datasource"], ds, "{file} variable {}", v["name"]);
            let r = plugin.query(interpolate(&v["query"], ""), FROM, TO).await;
            assert_eq!(r.error, "", "{file} variable {}", v["name"]);
            let values = r.frames[0].field("value").strs();
            assert!(!values.is_empty(), "{file} variable {} has no values", v["name"]);
            if v["name"] == "session" {
                session = values[0].clone();
            }
        }
        for a in dash["annotations"]["list"].as_array().unwrap() {
            let r = plugin.query(interpolate(&a["target"], &session), FROM, TO).await;
            assert_eq!(r.error, "", "{file} annotation {}", a["name"]);
            let frame = &r.frames[0];
            for field in ["time", "title", "text", "tags"] {
                assert!(frame.fields.iter().any(|f| f.name == field), "{file} annotation {}: {field}", a["name"]);
            }
        }
        let panels = dash["panels"].as_array().unwrap();
        assert!(panels.len() >= 8, "{file}");
        for p in panels {
            let what = format!("{file}: {}", p["title"]);
            assert_eq!(p["datasource"], ds, "{what}");
            for t in p["targets"].as_array().unwrap() {
                assert_eq!(t["datasource"], ds, "{what}");
                let r = plugin.query(interpolate(t, &session), FROM, TO).await;
                assert_eq!(r.error, "", "{what}");
                assert_shape(p["type"].as_str().unwrap(), &what, &r.frames);
            }
        }
    }
}
