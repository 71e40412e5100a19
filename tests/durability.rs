//! Durability: sustained OTLP ingest, SIGKILL at random moments, restart on the same file. Every
//! export the receiver acknowledged must be stored exactly once; an export cut off by the kill is
//! either wholly stored or not at all (one transaction per commit).
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{log_export, Plugin};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use serde_json::json;

const RECORDS_PER_EXPORT: usize = 200;
const KILLS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill_exactly_once() {
    let mut dir = tempfile::tempdir().expect("temp dir");
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut sent = BTreeSet::new();
    // deterministic "random" kill moments between 150 and 900 ms after the ingest starts
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for round in 0..KILLS {
        let plugin = Plugin::start_with(dir, "127.0.0.1:0", "127.0.0.1:0").await;
        let endpoint = format!("http://{}", plugin.grpc_addr);
        let mut tasks = Vec::new();
        // three concurrent exporters, so kills land inside group commits too
        for client in 0..3 {
            let acked = acked.clone();
            let endpoint = endpoint.clone();
            let ids: Vec<String> = (0..10_000).map(|n| format!("r{round}-c{client}-{n}")).collect();
            tasks.push(tokio::spawn(async move {
                let mut logs = LogsServiceClient::connect(endpoint).await.expect("connect");
                let mut tried = Vec::new();
                for id in ids {
                    tried.push(id.clone());
                    match logs.export(log_export(&id, RECORDS_PER_EXPORT)).await {
                        Ok(_) => {
                            acked.lock().unwrap().insert(id);
                        }
                        Err(_) => break, // the process is gone
                    }
                }
                tried
            }));
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        tokio::time::sleep(Duration::from_millis(150 + rng % 750)).await;
        dir = plugin.kill9();
        for t in tasks {
            sent.extend(t.await.expect("exporter task"));
        }
    }

    // restart on the same file; exporters retry what was not acknowledged (and some that was,
    // as after a lost ack): identical re-sends must not be stored twice
    let plugin = Plugin::start_with(dir, "127.0.0.1:0", "127.0.0.1:0").await;
    let mut logs = LogsServiceClient::connect(format!("http://{}", plugin.grpc_addr)).await.expect("connect");
    let acked_now = acked.lock().unwrap().clone();
    let retried: Vec<&String> = sent.iter().filter(|id| !acked_now.contains(*id)).chain(acked_now.iter().take(20)).collect();
    for id in &retried {
        logs.export(log_export(id, RECORDS_PER_EXPORT)).await.expect("retry acknowledged");
        acked.lock().unwrap().insert((*id).clone());
    }
    let result = plugin
        .query(
            json!({"refId": "A", "queryType": "sql", "format": "table",
                   "rawSql": "SELECT session_id, count(*)::BIGINT AS n FROM events GROUP BY 1"}),
            1_795_000_000,
            1_796_000_000,
        )
        .await;
    assert!(result.error.is_empty(), "{}", result.error);
    let frame = &result.frames[0];
    let stored: BTreeMap<String, i64> = frame.field("session_id").strs().into_iter().zip(frame.field("n").i64s()).collect();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > KILLS * 3, "too few exports acknowledged to say anything: {}", acked.len());
    let lost: Vec<&String> = acked.iter().filter(|id| stored.get(*id) != Some(&(RECORDS_PER_EXPORT as i64))).collect();
    assert!(lost.is_empty(), "acknowledged exports missing or repeated: {lost:?}");
    // nothing partial: an export cut off by a kill is all there or absent
    let partial: Vec<(&String, &i64)> = stored.iter().filter(|(_, n)| **n != RECORDS_PER_EXPORT as i64).collect();
    assert!(partial.is_empty(), "partially stored exports: {partial:?}");
    assert!(stored.keys().all(|id| sent.contains(id)));
    eprintln!(
        "durability: {KILLS} SIGKILLs, {} exports ({} records) acknowledged, lost 0, repeated 0; {} retried after restart, none stored twice",
        acked.len(),
        acked.len() * RECORDS_PER_EXPORT,
        retried.len()
    );
}
