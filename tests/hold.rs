//! Nothing refused that can be held: exports that arrive before the store has opened, or while
//! the writer is behind, wait and are acknowledged after their commit; only past the wait
//! (`GF_PLUGIN_STORE_WAIT_SECONDS`) or the bytes held (`GF_PLUGIN_INGEST_HOLD_MAX`) is an export
//! refused, with a reason. Claude Code's gRPC exporter never re-sends a refused export.
mod common;

use std::time::{Duration, Instant};

use common::test_fixtures::{run, Fixture};
use common::{free_address, log_export, send_grpc, Plugin};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use serde_json::Value;

/// A gRPC channel to `address`, retrying while nothing listens there yet (a refused connection
/// is not an export).
async fn channel(address: &str) -> tonic::transport::Channel {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tonic::transport::Endpoint::from_shared(format!("http://{address}")).unwrap().connect().await {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "nothing listens on {address}: {e}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// Posts a captured HTTP export; retries only a connection that was refused (nothing sent).
async fn send_http(address: &str, f: &Fixture) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut req = reqwest::Client::new().post(format!("http://{address}/v1/{}", f.signal)).header("content-type", &f.content_type);
        if let Some(e) = &f.content_encoding {
            req = req.header("content-encoding", e);
        }
        match req.body(f.body()).send().await {
            Ok(resp) => return resp.status().as_u16(),
            Err(e) if e.is_connect() && Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(e) => panic!("POST {}: {e}", f.file),
        }
    }
}

fn expected(fixtures: &[Fixture], key: &str) -> i64 {
    fixtures.iter().map(|f| f.counts.get(key).copied().unwrap_or(0) as i64).sum()
}

#[tokio::test]
async fn exports_that_arrive_before_the_store_opens_are_held_and_stored_once() {
    let (grpc, http) = (free_address(), free_address());
    // the store opens 1.5 s after the handshake: every export below arrives before it
    let mut plugin = Plugin::launch_env(tempfile::tempdir().unwrap(), &grpc, &http, &[("GPX_TEST_STORE_OPEN_DELAY_MS", "1500")]);
    let started = Instant::now();
    let over_grpc = run("tools", "grpc");
    let over_http = [run("exhaust", "http/json"), run("error-cumulative", "http/protobuf")].concat();
    let ch = channel(&grpc).await;
    let grpc_sends = over_grpc.iter().map(|f| {
        let ch = ch.clone();
        async move { (send_grpc(ch, f).await, started.elapsed()) }
    });
    let http_sends = over_http.iter().map(|f| {
        let http = http.clone();
        async move { (send_http(&http, f).await, started.elapsed()) }
    });
    let (grpc_results, http_results) = tokio::join!(futures::future::join_all(grpc_sends), futures::future::join_all(http_sends));
    for (f, (result, at)) in over_grpc.iter().zip(&grpc_results) {
        assert!(result.is_ok(), "{}: refused over gRPC: {result:?}", f.file);
        assert!(*at >= Duration::from_millis(1400), "{}: acknowledged after {at:?}, before the store opened", f.file);
    }
    for (f, (status, at)) in over_http.iter().zip(&http_results) {
        assert_eq!(*status, 200, "{}", f.file);
        assert!(*at >= Duration::from_millis(1400), "{}: acknowledged after {at:?}", f.file);
    }
    plugin.wait_ready().await;
    let details = plugin.health_details().await;
    let all = [over_grpc, over_http].concat();
    assert_eq!(details["store"]["events"], expected(&all, "log_records"), "every log record once");
    assert_eq!(details["store"]["spans"], expected(&all, "spans"), "every span once");
    assert!(details["store"]["metric_points"].as_i64().unwrap() > 0);
    assert_eq!(details["ingest"]["refusals"], serde_json::json!({}), "nothing refused");
    assert_eq!(details["ingest"]["stored"]["logs"]["exports"], all.iter().filter(|f| f.signal == "logs").count());
}

/// Sends `ids.len()` exports at once, one session each; the statuses in order.
async fn export_all(plugin: &Plugin, ids: &[String]) -> Vec<Result<(), tonic::Status>> {
    let ch = channel(&plugin.grpc_addr).await;
    let sends = ids.iter().map(|id| {
        let ch = ch.clone();
        async move { LogsServiceClient::new(ch).export(log_export(id, 20)).await.map(|_| ()) }
    });
    futures::future::join_all(sends).await
}

async fn records_per_session(plugin: &Plugin) -> std::collections::BTreeMap<String, i64> {
    let r = plugin
        .query(
            serde_json::json!({"queryType": "sql", "rawSql": "SELECT session_id, count(*) AS n FROM events GROUP BY 1"}),
            0,
            4_000_000_000,
        )
        .await;
    assert_eq!(r.error, "");
    match r.frames.first().filter(|f| !f.fields.is_empty()) {
        Some(f) => f.field("session_id").strs().into_iter().zip(f.field("n").i64s()).collect(),
        None => Default::default(),
    }
}

#[tokio::test]
async fn a_writer_behind_holds_exports_within_the_wait_then_refuses_with_the_reason() {
    let hooks = tempfile::tempdir().unwrap();
    let pause = hooks.path().join("pause-writer");
    let pause_env = pause.to_str().unwrap();
    let plugin = Plugin::start_env(
        tempfile::tempdir().unwrap(),
        &[("GPX_TEST_WRITER_PAUSE_FILE", pause_env), ("GF_PLUGIN_STORE_WAIT_SECONDS", "3")],
    )
    .await;

    // behind for 1 s: everything waits and is acknowledged
    std::fs::write(&pause, b"").unwrap();
    let held: Vec<String> = (0..10).map(|i| format!("held-{i}")).collect();
    let unpause = {
        let pause = pause.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            std::fs::remove_file(pause).unwrap();
        })
    };
    let started = Instant::now();
    for (id, r) in held.iter().zip(export_all(&plugin, &held).await) {
        assert!(r.is_ok(), "{id}: {r:?}");
    }
    assert!(started.elapsed() >= Duration::from_millis(900), "the exports waited for the writer");
    unpause.await.unwrap();

    // behind for longer than the wait: refused with the reason, never silently
    std::fs::write(&pause, b"").unwrap();
    let late: Vec<String> = (0..80).map(|i| format!("late-{i:02}")).collect();
    let results = export_all(&plugin, &late).await;
    let (mut queued, mut refused) = (Vec::new(), Vec::new());
    for (id, r) in late.iter().zip(results) {
        let status = r.expect_err("past the wait");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        if status.message().contains("queued and will be stored") {
            queued.push(id.clone());
        } else {
            assert!(status.message().contains("nothing of this export was stored"), "{}", status.message());
            refused.push(id.clone());
        }
    }
    assert!(!queued.is_empty() && !refused.is_empty(), "queued {}, refused {}", queued.len(), refused.len());
    std::fs::remove_file(&pause).unwrap();
    // the queued ones are stored once the writer catches up; the refused ones when re-sent
    for (id, r) in refused.iter().zip(export_all(&plugin, &refused).await) {
        assert!(r.is_ok(), "{id}: {r:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let counts = records_per_session(&plugin).await;
        if counts.len() == held.len() + late.len() {
            assert!(counts.values().all(|n| *n == 20), "every record exactly once: {counts:?}");
            break;
        }
        assert!(Instant::now() < deadline, "stored {} of {} sessions", counts.len(), held.len() + late.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = plugin.health_details().await;
    assert!(health["ingest"]["refusals"]["writer_behind"]["count"].as_u64().unwrap() >= refused.len() as u64, "{health}");
}

#[tokio::test]
async fn past_the_bytes_held_an_export_is_refused_at_once() {
    let hooks = tempfile::tempdir().unwrap();
    let pause = hooks.path().join("pause-writer");
    let env = [("GPX_TEST_WRITER_PAUSE_FILE", pause.to_str().unwrap()), ("GF_PLUGIN_INGEST_HOLD_MAX", "16KiB")];
    let plugin = Plugin::start_env(tempfile::tempdir().unwrap(), &env).await;
    std::fs::write(&pause, b"").unwrap();
    let ch = channel(&plugin.grpc_addr).await;
    // the first export is held whatever its size (about 6 KiB each here)
    let first = tokio::spawn({
        let ch = ch.clone();
        async move { LogsServiceClient::new(ch).export(log_export("first", 20)).await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = tokio::spawn({
        let ch = ch.clone();
        async move { LogsServiceClient::new(ch).export(log_export("second", 20)).await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let third = LogsServiceClient::new(ch).export(log_export("third", 20)).await.expect_err("over the bytes held");
    assert!(started.elapsed() < Duration::from_secs(1), "refused at once");
    assert_eq!(third.code(), tonic::Code::Unavailable);
    assert!(third.message().contains("GF_PLUGIN_INGEST_HOLD_MAX"), "{}", third.message());
    std::fs::remove_file(&pause).unwrap();
    first.await.unwrap().expect("held and stored");
    second.await.unwrap().expect("held and stored");
    let health: Value = plugin.health_details().await;
    assert_eq!(health["ingest"]["refusals"]["hold_full"]["count"], 1);
}
