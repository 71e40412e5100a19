//! Retention from the datasource's settings: data older than `retentionDays` is deleted in the
//! background while the rest stays and ingest goes on.
mod common;

use std::time::{Duration, Instant};

use common::{log_export, plugin_context, Plugin};
use grafana_plugin_sdk::pluginv2;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;

async fn sessions(plugin: &Plugin) -> Vec<String> {
    let r = plugin
        .query(
            serde_json::json!({"refId": "A", "queryType": "sql", "format": "table",
                               "rawSql": "SELECT DISTINCT session_id FROM events ORDER BY 1"}),
            0,
            4_000_000_000,
        )
        .await;
    assert!(r.error.is_empty(), "{}", r.error);
    r.frames.first().filter(|f| !f.fields.is_empty()).map(|f| f.field("session_id").strs()).unwrap_or_default()
}

/// A request carrying the datasource's `jsonData`, as Grafana sends with every request.
async fn send_datasource_settings(plugin: &Plugin, json_data: &[u8]) {
    let mut ctx = plugin_context();
    ctx.data_source_instance_settings.as_mut().unwrap().json_data = json_data.to_vec();
    pluginv2::diagnostics_client::DiagnosticsClient::new(plugin.channel().await)
        .check_health(pluginv2::CheckHealthRequest { plugin_context: Some(ctx), ..Default::default() })
        .await
        .unwrap();
}

#[tokio::test]
async fn data_past_the_datasource_retention_is_deleted_in_the_background() {
    let plugin = Plugin::start_env(tempfile::tempdir().unwrap(), &[("GF_PLUGIN_RETENTION_INTERVAL_SECONDS", "1")]).await;
    let mut logs = LogsServiceClient::connect(format!("http://{}", plugin.grpc_addr)).await.unwrap();
    let now_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    for (id, days_ago) in [("old-40d", 40u64), ("recent-2d", 2), ("today", 0)] {
        let mut export = log_export(id, 10);
        for r in export.resource_logs.iter_mut().flat_map(|r| &mut r.scope_logs).flat_map(|s| &mut s.log_records) {
            r.time_unix_nano = now_ns - days_ago * 86_400 * 1_000_000_000;
        }
        logs.export(export).await.unwrap();
    }
    assert_eq!(sessions(&plugin).await, ["old-40d", "recent-2d", "today"]);
    send_datasource_settings(&plugin, br#"{"retentionDays": 30}"#).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while sessions(&plugin).await.contains(&"old-40d".to_string()) {
        assert!(Instant::now() < deadline, "old data still there");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(sessions(&plugin).await, ["recent-2d", "today"]);
    logs.export(log_export("after", 10)).await.expect("ingest goes on");
}

/// The datasource's size limit reaches the background task: past it the oldest data goes
/// (`store::retention` tests how much), and ingest goes on meanwhile.
#[tokio::test]
async fn data_past_the_datasource_size_limit_is_deleted_in_the_background() {
    let plugin = Plugin::start_env(tempfile::tempdir().unwrap(), &[("GF_PLUGIN_RETENTION_INTERVAL_SECONDS", "1")]).await;
    let mut logs = LogsServiceClient::connect(format!("http://{}", plugin.grpc_addr)).await.unwrap();
    for id in ["a", "b", "c"] {
        logs.export(log_export(id, 50)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sessions(&plugin).await, ["a", "b", "c"], "no limit yet: everything stays");
    // 1 kB: less than an empty database takes, so everything goes
    send_datasource_settings(&plugin, br#"{"retentionMaxSizeGB": 0.000001}"#).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sessions(&plugin).await.is_empty() {
        assert!(Instant::now() < deadline, "data still there: {:?}", sessions(&plugin).await);
        logs.export(log_export("meanwhile", 10)).await.expect("ingest goes on during size passes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GF_PLUGIN_RETENTION_MAX_SIZE` (grafana.ini `retention_max_size`) sets the limit without any
/// datasource setting.
#[tokio::test]
async fn the_size_limit_from_grafana_ini_applies_without_a_datasource_setting() {
    let env = [("GF_PLUGIN_RETENTION_INTERVAL_SECONDS", "1"), ("GF_PLUGIN_RETENTION_MAX_SIZE", "1kB")];
    let plugin = Plugin::start_env(tempfile::tempdir().unwrap(), &env).await;
    let mut logs = LogsServiceClient::connect(format!("http://{}", plugin.grpc_addr)).await.unwrap();
    logs.export(log_export("a", 50)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sessions(&plugin).await.is_empty() {
        assert!(Instant::now() < deadline, "data still there: {:?}", sessions(&plugin).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
