//! plugin.json against Grafana's plugin schema, and every bundled dashboard: importable and
//! provisionable as is, and every panel's queries (plus variables and annotations) answered by the
//! backend on fixture data with frames of the shape the panel type needs.
mod common;

use common::test_fixtures::{run, transcript_run};
use common::{DecodedFrame, Plugin};
use serde_json::{json, Value};

const FROM: i64 = 1_700_000_000;
const TO: i64 = 1_900_000_000;
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn plugin_json_matches_grafanas_schema_and_includes_every_dashboard() {
    let plugin = common::read_repo_json("plugin.json");
    let errors = common::plugin_schema_errors(&plugin);
    assert!(errors.is_empty(), "plugin.json: {errors:#?}");
    assert_eq!(plugin["id"], "vibe-claudecode-datasource");
    assert_eq!(plugin["executable"], "gpx_claudecode");
    for key in ["backend", "alerting", "logs", "metrics", "annotations", "streaming"] {
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

/// Dashboard variables at All, one session.
fn interpolate(target: &Value, session: &str) -> Value {
    common::interpolate(target, None, None, session)
}

fn is_number(f: &common::DecodedField) -> bool {
    f.is_number()
}

/// The frame shape each panel type needs.
fn assert_shape(panel_type: &str, what: &str, frames: &[DecodedFrame]) {
    let frame = frames.iter().find(|f| !f.fields.is_empty()).unwrap_or_else(|| panic!("{what}: no data"));
    assert!(frame.rows() > 0, "{what}: no rows");
    let time_first = frame.fields[0].is_time();
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
    plugin
        .ingest_http(&[run("tools", "http/protobuf"), run("exhaust", "http/json"), run("error-cumulative", "http/protobuf")].concat())
        .await;
    // Claude Code 2.1.332 with repository attributes and a subagent, for the panels that need them
    plugin.ingest_http(&[transcript_run("tools-repo-2.1.332"), transcript_run("subagent-2.1.332")].concat()).await;
    for file in ["dashboards/overview.json", "dashboards/sessions.json"] {
        let dash = common::read_repo_json(file);
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
        let mut checked = std::collections::BTreeMap::new();
        let panels = dash["panels"].as_array().unwrap();
        assert!(panels.len() >= 8, "{file}");
        for p in panels {
            let what = format!("{file}: {}", p["title"]);
            assert_eq!(p["datasource"], ds, "{what}");
            for t in p["targets"].as_array().unwrap() {
                assert_eq!(t["datasource"], ds, "{what}");
                let r = plugin.query(interpolate(t, &session), FROM, TO).await;
                assert_eq!(r.error, "", "{what}");
                if t["queryType"] == "live" {
                    // lines come later, through Grafana Live (tests/live.rs): the frame names the
                    // session's channel (with content: an Admin asks) and has the logs fields
                    assert_eq!(r.frames[0].meta["channel"], format!("ds/claudecode/content/tail/{session}"), "{what}");
                    assert!(r.frames[0].fields[0].is_time() && r.frames[0].field("body").grafana_type == "string", "{what}");
                    continue;
                }
                assert_shape(p["type"].as_str().unwrap(), &what, &r.frames);
                checked.insert(p["title"].as_str().unwrap().to_string(), r.frames);
            }
        }
        if file.ends_with("overview.json") {
            assert_overview_v332_numbers(&checked);
        }
    }
}

/// The 2.1.332 panels of the Overview, with the numbers of the runs ingested above.
fn assert_overview_v332_numbers(panels: &std::collections::BTreeMap<String, Vec<DecodedFrame>>) {
    let f = &panels["Repositories"][0];
    let row = f.row_where("repository", "widgets");
    assert_eq!(f.field("branch").values[row], "master");
    assert_eq!(f.field("commit_sha").values[row], "aa10ccb1124ea6694bac095164662ae39db5a6a7");
    assert!((f.field("cost_usd").f64s()[row] - 0.0244096).abs() < 1e-9);
    assert_eq!(f.field("commits").i64s()[row], 1);
    let f = &panels["Cost by query source"][0];
    let row = f.row_where("query_class", "subagent");
    assert!((f.field("cost_usd").f64s()[row] - 0.0002786).abs() < 1e-9);
    let f = &panels["Agents"][0];
    let row = f.row_where("agent", "general-purpose");
    assert_eq!(f.field("api_requests").i64s()[row], 2);
    assert_eq!(f.field("runs").i64s()[row], 1);
    let f = &panels["Claude Code versions and providers"][0];
    let row = f.row_where("app_version", "2.1.332");
    assert_eq!(f.field("provider").values[row], "firstParty");
    assert_eq!(f.field("sessions").i64s()[row], 2);
}

fn read_yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What a rule's reduce step sees of query A: the last or largest non-null number.
fn reduce(r: &common::QueryResult, reducer: &str) -> Option<f64> {
    let values: Vec<f64> = r
        .frames
        .iter()
        .flat_map(|f| f.fields.iter().filter(|x| is_number(x)).flat_map(|x| x.values.iter().filter_map(Value::as_f64)))
        .filter(|v| v.is_finite())
        .collect();
    match reducer {
        "last" => values.last().copied(),
        "max" => values.into_iter().reduce(f64::max),
        other => panic!("reducer {other} not modelled"),
    }
}

#[tokio::test]
async fn provisioning_files_fit_the_plugin_and_alert_rules_evaluate() {
    let datasources = read_yaml("provisioning/datasources/claude-code.yaml");
    let ds = &datasources["datasources"][0];
    assert_eq!(ds["type"], "vibe-claudecode-datasource");
    let uid = ds["uid"].as_str().unwrap();
    let providers = read_yaml("provisioning/dashboards/claude-code.yaml");
    let path = providers["providers"][0]["options"]["path"].as_str().unwrap();
    assert!(path.ends_with("/vibe-claudecode-datasource/dashboards"), "{path}");

    // the compose example: Grafana's default (Alpine) image, which the static binaries run in,
    // the package and provisioning mounted where the provider above looks, the receiver's ports published
    let compose = read_yaml("docker-compose.yaml");
    let grafana = &compose["services"]["grafana"];
    let image = grafana["image"].as_str().unwrap();
    assert!(image.starts_with("grafana/grafana:") && !image.contains("-ubuntu"), "{image}");
    let volumes: Vec<&str> = grafana["volumes"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(volumes.contains(&"./dist:/var/lib/grafana/plugins/vibe-claudecode-datasource:ro"), "{volumes:?}");
    assert!(volumes.contains(&"./provisioning:/etc/grafana/provisioning:ro"), "{volumes:?}");
    let ports: Vec<&str> = grafana["ports"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(ports, ["3000:3000", "4317:4317", "4318:4318"]);
    assert_eq!(grafana["environment"]["GF_PLUGIN_OTLP_HTTP_LISTEN"], "0.0.0.0:4318");

    // the exhaust run: one API request failed with 500 after its retries
    let plugin = Plugin::start().await;
    plugin.ingest_http(&run("exhaust", "http/json")).await;
    let last = plugin.query(json!({"queryType": "sql", "rawSql": "SELECT epoch(max(time)) AS t FROM events"}), FROM, TO).await;
    let now = last.frames[0].field("t").f64s()[0].ceil() as i64 + 1;

    let rules = read_yaml("provisioning/alerting/claude-code.yaml");
    let mut fired = std::collections::BTreeMap::new();
    for rule in rules["groups"][0]["rules"].as_array().unwrap() {
        let title = rule["title"].as_str().unwrap();
        let data = rule["data"].as_array().unwrap();
        let ref_ids: Vec<&str> = data.iter().map(|d| d["refId"].as_str().unwrap()).collect();
        assert!(ref_ids.contains(&rule["condition"].as_str().unwrap()), "{title}: condition");
        let mut a = None;
        let mut reducer = None;
        let mut threshold = None;
        for d in data {
            let model = &d["model"];
            if d["datasourceUid"] == "__expr__" {
                let input = model["expression"].as_str().unwrap();
                assert!(ref_ids.contains(&input), "{title}: expression {input}");
                match model["type"].as_str().unwrap() {
                    "reduce" => reducer = Some(model["reducer"].as_str().unwrap().to_string()),
                    "threshold" => {
                        let evaluator = &model["conditions"][0]["evaluator"];
                        assert_eq!(evaluator["type"], "gt", "{title}");
                        threshold = evaluator["params"][0].as_f64();
                    }
                    other => panic!("{title}: expression type {other} not modelled"),
                }
                continue;
            }
            assert_eq!(d["datasourceUid"], uid, "{title}: runs on the provisioned datasource");
            let range = &d["relativeTimeRange"];
            let (from, to) = (now - range["from"].as_i64().unwrap(), now - range["to"].as_i64().unwrap());
            let r = plugin.query_as_alert(model.clone(), from, to).await;
            common::assert_alertable(title, &r);
            a = Some(r);
        }
        let a = a.unwrap_or_else(|| panic!("{title}: no datasource query"));
        let value = match &reducer {
            Some(reducer) => reduce(&a, reducer),
            None => reduce(&a, "last"),
        };
        fired.insert(title.to_string(), value.is_some_and(|v| v > threshold.unwrap()));
    }
    assert_eq!(
        fired,
        [
            ("Claude Code API error rate over 5 %", true),
            ("Claude Code P95 API latency over 30 s", false),
            ("Claude Code budget forecast over 100 %", false),
            ("Claude Code budget forecast over 80 %", false),
            ("Claude Code cost spike (over 2x the previous day)", false),
        ]
        .into_iter()
        .map(|(t, f)| (t.to_string(), f))
        .collect()
    );
}
