//! Filters with meaning, on every panel of the Overview dashboard: choosing the only model (or
//! team) in use changes nothing; with two models in use the panels split between them, each
//! model's numbers are exactly those of its data alone, and they add up to All. Records without
//! a `model` (tool calls, commits, pull requests, active time, session counts) follow the model
//! call, prompt or session they belong to. Both Claude Code versions: 2.1.197 (model
//! `claude-opus-4-8` on events, `claude-opus-4-8[1m]` on metrics, no `request_id` on tool events)
//! and 2.1.332 (`claude-opus-5-5`, `request_id` on tool events).
mod common;

use std::collections::BTreeMap;

use common::test_fixtures::{run, run_v332, Fixture};
use common::{DecodedFrame, Plugin};
use serde_json::Value;

const FROM: i64 = 1_790_000_000;
const TO: i64 = 1_800_000_000;
const OLD_MODEL: &str = "claude-opus-4-8";
const NEW_MODEL: &str = "claude-opus-5-5";

fn v197() -> Vec<Fixture> {
    [run("tools", "http/protobuf"), run("exhaust", "http/json"), run("error-cumulative", "http/protobuf")].concat()
}

fn v332_http() -> Vec<Fixture> {
    [run_v332("multi", "http/protobuf"), run_v332("multi-assistant", "http/json"), run_v332("tools-rawbodies", "http/protobuf")].concat()
}

async fn plugin_with(old: bool, new: bool) -> Plugin {
    let plugin = Plugin::start().await;
    if old {
        plugin.ingest_http(&v197()).await;
    }
    if new {
        plugin.ingest_http(&v332_http()).await;
        plugin.ingest_grpc(&run_v332("tools", "grpc")).await;
    }
    plugin
}

/// A panel's numbers: per number field and row (tables: keyed by the row's text fields) or per
/// series (summed over the range), so two results can be compared and added up.
fn numbers(frames: &[DecodedFrame]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for frame in frames {
        let series = frame.fields.first().is_some_and(|f| f.is_time());
        for f in frame.fields.iter().filter(|f| f.is_number()) {
            // ratios and percentiles do not add up across a split: marked for `additive`
            let mark = if f.config["unit"] == "percentunit" || f.name.starts_with('p') && f.name.ends_with("_ms") { "~" } else { "" };
            if series {
                let key = format!("{mark}{} {}", f.name, f.labels);
                *out.entry(key).or_insert(0.0) += f.values.iter().filter_map(Value::as_f64).sum::<f64>();
                continue;
            }
            for row in 0..frame.rows() {
                let dims: Vec<String> = frame
                    .fields
                    .iter()
                    .filter(|d| d.grafana_type == "string")
                    .map(|d| d.values[row].as_str().unwrap_or("").to_string())
                    .collect();
                if let Some(v) = f.values[row].as_f64() {
                    *out.entry(format!("{mark}{} [{}]", f.name, dims.join(","))).or_insert(0.0) += v;
                }
            }
        }
    }
    out
}

/// Numbers that add up across a split (counts, sums), as opposed to ratios and percentiles.
fn additive(key: &str) -> bool {
    !key.starts_with('~')
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Every Overview panel at one team / model choice (`None` = All).
async fn overview(plugin: &Plugin, team: Option<&str>, model: Option<&str>) -> BTreeMap<String, BTreeMap<String, f64>> {
    let dash = common::read_repo_json("dashboards/overview.json");
    let mut out = BTreeMap::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let r = plugin.query(common::interpolate(t, team, model, ""), FROM, TO).await;
            assert_eq!(r.error, "", "{}", p["title"]);
            out.insert(p["title"].as_str().unwrap().to_string(), numbers(&r.frames));
        }
    }
    out
}

fn assert_same(what: &str, got: &BTreeMap<String, BTreeMap<String, f64>>, want: &BTreeMap<String, BTreeMap<String, f64>>) {
    for (panel, want) in want {
        let got = &got[panel];
        let keys: std::collections::BTreeSet<&String> = got.keys().chain(want.keys()).collect();
        for k in keys {
            let (g, w) = (got.get(k).copied().unwrap_or(0.0), want.get(k).copied().unwrap_or(0.0));
            assert!(close(g, w), "{what}: {panel} {k}: {g} != {w}");
        }
    }
}

async fn model_values(plugin: &Plugin) -> Vec<String> {
    let r = plugin.query(serde_json::json!({"queryType": "variable", "key": "model"}), FROM, TO).await;
    r.frames[0].field("value").strs()
}

#[tokio::test]
async fn choosing_the_only_model_or_team_in_use_changes_no_panel() {
    for (old, new, model) in [(true, false, OLD_MODEL), (false, true, NEW_MODEL)] {
        let plugin = plugin_with(old, new).await;
        assert_eq!(model_values(&plugin).await, [model], "one model, one choice");
        let all = overview(&plugin, None, None).await;
        assert_same(&format!("model {model}"), &overview(&plugin, None, Some(model)).await, &all);
        assert_same("team platform", &overview(&plugin, Some("platform"), None).await, &all);
        // the panels this used to empty
        assert!(all["Lines, commits, PRs"]["commits []"] > 0.0 && all["Lines, commits, PRs"]["active_time_s []"] > 0.0, "{model}");
        assert!(all["Tool success rate"].keys().any(|k| k.starts_with("calls [")), "{model}: {:?}", all["Tool success rate"]);
        if old {
            // exact, from the captured runs: the tools and error-cumulative runs' cost, three
            // sessions, the tools run's commit and PR, Bash calls 3 (tools) + 1 (error-cumulative)
            assert!(close(all["Cost vs previous period"]["value []"], 0.048449 + 0.018464), "{:?}", all["Cost vs previous period"]);
            assert_eq!(all["Active sessions"]["value []"], 3.0);
            assert_eq!((all["Lines, commits, PRs"]["commits []"], all["Lines, commits, PRs"]["pull_requests []"]), (1.0, 1.0));
            // (2.1.197 sends no tool_source)
            assert_eq!(all["Tool success rate"]["calls [Bash,(none)]"], 4.0);
        }
    }
}

#[tokio::test]
async fn two_models_split_every_panel_exactly_and_add_up_to_all() {
    let (old, new, both) = tokio::join!(plugin_with(true, false), plugin_with(false, true), plugin_with(true, true));
    assert_eq!(model_values(&both).await, [OLD_MODEL, NEW_MODEL]);
    let (old_all, new_all) = (overview(&old, None, None).await, overview(&new, None, None).await);
    let (both_old, both_new, both_all) =
        (overview(&both, None, Some(OLD_MODEL)).await, overview(&both, None, Some(NEW_MODEL)).await, overview(&both, None, None).await);
    // each model's panels are those of its own data, ratios and percentiles included
    assert_same(OLD_MODEL, &both_old, &old_all);
    assert_same(NEW_MODEL, &both_new, &new_all);
    // and the counts and sums add up to All
    for (panel, all) in &both_all {
        for (k, v) in all.iter().filter(|(k, _)| additive(k)) {
            let sum = both_old[panel].get(k).copied().unwrap_or(0.0) + both_new[panel].get(k).copied().unwrap_or(0.0);
            assert!(close(*v, sum), "{panel} {k}: All {v} != {OLD_MODEL} + {NEW_MODEL} = {sum}");
        }
    }
    // a model in use nowhere empties everything but what no model drove
    let none = overview(&both, None, Some("claude-haiku-9")).await;
    assert_eq!(none["Cost vs previous period"].get("value []").copied().unwrap_or(0.0), 0.0);
    assert_eq!(none["Lines, commits, PRs"].get("commits []").copied().unwrap_or(0.0), 0.0);
}
