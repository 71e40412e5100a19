//! A full disk: exports are refused with a clear, retryable error and nothing half-stored; the
//! database is not corrupted, the plugin recovers by itself once space returns, and a restart
//! afterwards finds every acknowledged record exactly once.
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{log_export, Plugin};
use grafana_plugin_sdk::pluginv2::check_health_response::HealthStatus;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};

const RECORDS: usize = 200;

/// Records stored per session, by raw SQL through QueryData.
async fn counts(plugin: &Plugin) -> BTreeMap<String, i64> {
    let r = plugin
        .query(
            serde_json::json!({"refId": "A", "queryType": "sql", "format": "table",
                               "rawSql": "SELECT session_id, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"}),
            0,
            4_000_000_000,
        )
        .await;
    assert!(r.error.is_empty(), "{}", r.error);
    match r.frames.first().filter(|f| !f.fields.is_empty()) {
        Some(f) => f.field("session_id").strs().into_iter().zip(f.field("n").i64s()).collect(),
        None => BTreeMap::new(),
    }
}

/// `log_export` with prompts that do not compress away, so the file grows as real data does.
fn noisy_export(id: &str) -> ExportLogsServiceRequest {
    let mut export = log_export(id, RECORDS);
    let mut seed = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    for r in export.resource_logs.iter_mut().flat_map(|r| &mut r.scope_logs).flat_map(|s| &mut s.log_records) {
        let prompt: String = (0..40)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                format!("{seed:016x}")
            })
            .collect();
        for kv in r.attributes.iter_mut().filter(|kv| kv.key == "prompt") {
            kv.value = Some(AnyValue { value: Some(any_value::Value::StringValue(prompt.clone())) });
        }
    }
    export
}

#[tokio::test]
async fn below_the_free_space_floor_exports_are_refused_before_anything_is_stored() {
    let plugin = Plugin::start_env(tempfile::tempdir().unwrap(), &[("GF_PLUGIN_MIN_FREE_DISK", "1000000TB")]).await;
    let mut logs = LogsServiceClient::connect(format!("http://{}", plugin.grpc_addr)).await.unwrap();
    let status = logs.export(log_export("refused", 10)).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("disk full") && status.message().contains("GF_PLUGIN_MIN_FREE_DISK"), "{}", status.message());

    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/logs", plugin.http_addr))
        .header("content-type", "application/x-protobuf")
        .body(prost::Message::encode_to_vec(&log_export("refused-http", 10)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(response.text().await.unwrap().contains("disk full"));

    let health = plugin.check_health().await;
    assert_eq!(health.status, HealthStatus::Error as i32, "{}", health.message);
    assert!(health.message.contains("disk full"), "{}", health.message);
    assert!(counts(&plugin).await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn a_full_disk_fails_exports_cleanly_and_the_plugin_recovers_when_space_returns() {
    // Every file may grow to 8 MB (schema v4's wider tables take more of a small file per
    // checkpoint than 6 MB left room for); checkpoints every 1 MB of WAL move data into the database
    // file until a checkpoint cannot write, which stops DuckDB until the file is reopened.
    // Exports wait 0.5 s (not the default 30 s) for a reopening that cannot succeed before space returns.
    let env = [("GF_PLUGIN_CHECKPOINT_THRESHOLD", "1MB"), ("GF_PLUGIN_MIN_FREE_DISK", "0"), ("GF_PLUGIN_STORE_WAIT_SECONDS", "0.5")];
    let plugin = Plugin::start_with_file_size_limit(tempfile::tempdir().unwrap(), &env, 8_000_000).await;
    let mut logs = LogsServiceClient::connect(format!("http://{}", plugin.grpc_addr)).await.unwrap();

    let (mut acked, mut failed) = (Vec::new(), Vec::new());
    for i in 0..3000 {
        let id = format!("s{i:04}");
        match logs.export(noisy_export(&id)).await {
            Ok(_) => acked.push(id),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "retryable: {status:?}");
                let m = status.message();
                // "writer has been behind": the store reopened within the wait, too late to commit
                assert!(
                    ["File too large", "disk full", "fatal storage error", "reopening", "writer has been behind"]
                        .iter()
                        .any(|w| m.contains(w)),
                    "a clear reason: {m}"
                );
                failed.push(id);
                if failed.len() >= 20 {
                    break;
                }
            }
        }
    }
    assert!(failed.len() >= 20, "the disk never filled: {} acknowledged", acked.len());
    assert!(acked.len() >= 20, "{} acknowledged before the disk filled", acked.len());
    let health = plugin.check_health().await;
    assert_eq!(health.status, HealthStatus::Error as i32, "{}", health.message);
    eprintln!("disk full after {} exports: {}", acked.len(), health.message);

    // space returns: lift the limit, the plugin reopens the database by itself
    let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain syscall on our own child's pid with a valid struct.
    let rc = unsafe { libc::prlimit(plugin.pid() as libc::pid_t, libc::RLIMIT_FSIZE, &unlimited, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &failed {
        // Claude Code's exporter retries these on UNAVAILABLE
        loop {
            match logs.export(noisy_export(id)).await {
                Ok(_) => break,
                Err(status) => {
                    assert!(Instant::now() < deadline, "still failing after space returned: {status:?}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    assert_eq!(plugin.check_health().await.status, HealthStatus::Ok as i32);
    let all: Vec<&String> = acked.iter().chain(&failed).collect();
    let check = |counts: BTreeMap<String, i64>| {
        assert_eq!(counts.len(), all.len(), "sessions stored");
        for id in &all {
            assert_eq!(counts.get(*id), Some(&(RECORDS as i64)), "{id}: every acknowledged record exactly once");
        }
    };
    check(counts(&plugin).await);

    // and a restart on the same file finds the same, and takes new data
    let dir = plugin.kill9();
    let plugin = Plugin::start_env(dir, &env).await;
    check(counts(&plugin).await);
    let mut logs = LogsServiceClient::connect(format!("http://{}", plugin.grpc_addr)).await.unwrap();
    logs.export(noisy_export("after-restart")).await.expect("new data after the restart");
}
