//! Ingest at full speed while three datasource instances refresh every dashboard panel in a
//! loop: no failed export, no failed query (no lock or conflict errors), bounded latency.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{log_export, plugin_context, test_fixtures, Plugin};
use grafana_plugin_sdk::pluginv2;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use serde_json::{json, Value};

fn panels(session: &str) -> Vec<Value> {
    let root = env!("CARGO_MANIFEST_DIR");
    ["overview", "sessions"]
        .iter()
        .flat_map(|d| {
            let text = std::fs::read_to_string(format!("{root}/dashboards/{d}.json")).expect("dashboard");
            let text = text.replace("${team:sqlstring}", "$__all").replace("${model:sqlstring}", "$__all").replace("$session", session);
            let json: Value = serde_json::from_str(&text).expect("dashboard JSON");
            json["panels"].as_array().cloned().unwrap_or_default()
        })
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_speed_ingest_and_dashboards_in_a_loop_on_several_instances() {
    let plugin = Plugin::start().await;
    plugin.ingest_http(&test_fixtures::run("tools", "http/protobuf")).await;
    let r = plugin
        .query(
            json!({"refId": "A", "queryType": "sql", "format": "table", "rawSql": "SELECT any_value(session_id) AS s FROM events"}),
            0,
            2_000_000_000,
        )
        .await;
    let session = r.frames[0].field("s").strs()[0].clone();
    let queries = panels(&session);
    assert_eq!(queries.len(), 33);

    let stop = Arc::new(AtomicBool::new(false));
    let mut exporters = Vec::new();
    for client in 0..3 {
        let endpoint = format!("http://{}", plugin.grpc_addr);
        let stop = stop.clone();
        exporters.push(tokio::spawn(async move {
            let mut logs = LogsServiceClient::connect(endpoint).await.expect("connect");
            let mut sent = 0usize;
            while !stop.load(Ordering::Relaxed) {
                logs.export(log_export(&format!("load-{client}-{sent}"), 500)).await.map_err(|e| e.to_string())?;
                sent += 1;
            }
            Ok::<usize, String>(sent)
        }));
    }
    let channel = plugin.channel().await;
    let mut dashboards = Vec::new();
    for instance in 1..=3i64 {
        let (channel, queries, stop) = (channel.clone(), queries.clone(), stop.clone());
        dashboards.push(tokio::spawn(async move {
            let mut ctx = plugin_context();
            let settings = ctx.data_source_instance_settings.as_mut().expect("settings");
            (settings.id, settings.uid) = (instance, format!("claudecode-{instance}"));
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // a refresh: every panel at once, one request each, as Grafana sends them
                let requests = queries.iter().map(|q| {
                    let channel = channel.clone();
                    let request = pluginv2::QueryDataRequest {
                        plugin_context: Some(ctx.clone()),
                        headers: Default::default(),
                        queries: vec![pluginv2::DataQuery {
                            ref_id: "A".into(),
                            query_type: q["queryType"].as_str().unwrap_or_default().into(),
                            max_data_points: 1000,
                            interval_ms: 60_000,
                            time_range: Some(pluginv2::TimeRange { from_epoch_ms: 1_795_200_000_000, to_epoch_ms: 1_795_400_000_000 }),
                            json: serde_json::to_vec(q).unwrap(),
                        }],
                    };
                    async move {
                        let started = Instant::now();
                        let resp = gpx_claudecode::plugin::data::call(channel, request, 256 << 20).await.map_err(|e| e.to_string())?;
                        match resp.responses.values().find(|r| !r.error.is_empty()) {
                            Some(r) => Err(r.error.clone()),
                            None => Ok(started.elapsed()),
                        }
                    }
                });
                for result in futures::future::join_all(requests).await {
                    latencies.push(result?);
                }
            }
            Ok::<Vec<Duration>, String>(latencies)
        }));
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let mut exports = 0;
    for e in exporters {
        exports += e.await.expect("exporter").expect("every export acknowledged");
    }
    let mut latencies = Vec::new();
    for d in dashboards {
        latencies.extend(d.await.expect("dashboard task").expect("every query answered"));
    }
    latencies.sort();
    let max = *latencies.last().expect("queries ran");
    eprintln!(
        "concurrency: {exports} exports ({} events) acknowledged while {} panel queries on 3 instances answered; median {:?}, max {:?}",
        exports * 500,
        latencies.len(),
        latencies[latencies.len() / 2],
        max
    );
    assert!(exports > 10 && latencies.len() >= 24 * 3, "too little work to say anything");
    assert!(max < Duration::from_secs(10), "a query took {max:?} under load");
    let stored = plugin.health_details().await["store"]["events"].as_u64().unwrap();
    assert_eq!(stored, 35 + exports as u64 * 500);
}
