//! The binary as Grafana and Claude Code see it: plugin-mode handshake, the fixtures sent over
//! OTLP/gRPC, OTLP/HTTP protobuf (plain and gzip), OTLP/HTTP JSON and Grafana's resource route,
//! then QueryData and CheckHealth with exact numbers taken from the fixtures.
mod common;

use common::test_fixtures::{fixture, run, Fixture};
use common::Plugin;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::json;

const FROM: i64 = 1_700_000_000;
const TO: i64 = 1_900_000_000;

const GRPC_SESSION: &str = "6baa5822-a9e9-442e-8af4-2aff0ed6b5f5";
const HTTP_PB_SESSION: &str = "4a513f9f-1086-4ca5-adf4-9dcd94af912f";
const HTTP_JSON_SESSION: &str = "66d7c442-7dcc-40ef-ad40-14021ab26796";
const EXHAUST_SESSION: &str = "d7efca2a-637d-4fd0-bdfb-b15cdb598c72";
const CUMULATIVE_SESSION: &str = "f50d5061-5b7d-41f6-a440-b5f0f7ba808e";
const GZIP_SESSION: &str = "23fc2408-561f-48fc-84b5-b2f5e89cebec";

async fn send_grpc(plugin: &Plugin, fixtures: &[Fixture]) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", plugin.grpc_addr)).unwrap().connect().await.unwrap();
    for f in fixtures {
        let body = fixture(&f.file);
        match f.signal.as_str() {
            "logs" => {
                let resp =
                    LogsServiceClient::new(channel.clone()).export(ExportLogsServiceRequest::decode(&body[..]).unwrap()).await.unwrap();
                assert_eq!(resp.into_inner().partial_success, None, "{}", f.file);
            }
            "metrics" => {
                let resp = MetricsServiceClient::new(channel.clone())
                    .export(ExportMetricsServiceRequest::decode(&body[..]).unwrap())
                    .await
                    .unwrap();
                assert_eq!(resp.into_inner().partial_success, None, "{}", f.file);
            }
            _ => {
                let resp =
                    TraceServiceClient::new(channel.clone()).export(ExportTraceServiceRequest::decode(&body[..]).unwrap()).await.unwrap();
                assert_eq!(resp.into_inner().partial_success, None, "{}", f.file);
            }
        }
    }
}

async fn post(plugin: &Plugin, path: &str, content_type: &str, encoding: Option<&str>, body: Vec<u8>) -> (u16, String, Vec<u8>) {
    let client = reqwest::Client::new();
    let mut req = client.post(format!("http://{}{}", plugin.http_addr, path)).header("content-type", content_type).body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

/// Sends fixtures over OTLP/HTTP to `/v1/<signal>` (or `path_for`) and checks the success body.
async fn send_http(plugin: &Plugin, fixtures: &[Fixture], path_for: impl Fn(&str) -> String) {
    for f in fixtures {
        let (status, ct, body) = post(plugin, &path_for(&f.signal), &f.content_type, f.content_encoding.as_deref(), fixture(&f.file)).await;
        assert_eq!(status, 200, "{}: {}", f.file, String::from_utf8_lossy(&body));
        assert_eq!(ct, f.content_type, "{}", f.file);
        if f.content_type == "application/json" {
            assert_eq!(body, b"{}", "{}", f.file);
        } else {
            assert!(body.is_empty(), "{}: empty Export*ServiceResponse expected", f.file);
        }
    }
}

/// Ingests every fixture run, each over the protocol it was captured with (plus the resource route).
async fn ingest_all(plugin: &Plugin) {
    send_grpc(plugin, &run("tools", "grpc")).await;
    send_http(plugin, &run("tools", "http/protobuf"), |s| format!("/v1/{s}")).await;
    send_http(plugin, &run("tools", "http/json"), |s| format!("/v1/{s}")).await;
    // the VictoriaMetrics / VictoriaLogs paths of the seed configuration
    send_http(plugin, &run("exhaust", "http/json"), |s| match s {
        "metrics" => "/opentelemetry/v1/metrics".into(),
        "logs" => "/insert/opentelemetry/v1/logs".into(),
        other => format!("/v1/{other}"),
    })
    .await;
    send_http(plugin, &run("error-cumulative", "http/protobuf"), |s| format!("/v1/{s}")).await;
    // gzip bodies through Grafana's resource route
    for f in run("simple-gzip", "http/protobuf") {
        let resp = plugin
            .call_resource(
                "POST",
                &format!("v1/{}", f.signal),
                &[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")],
                fixture(&f.file),
            )
            .await;
        assert_eq!(resp.code, 200, "{}: {}", f.file, String::from_utf8_lossy(&resp.body));
    }
}

#[tokio::test]
async fn fixtures_over_every_protocol_give_exact_numbers() {
    let plugin = Plugin::start().await;
    assert!(plugin.handshake.starts_with("1|2|tcp|127.0.0.1:"), "{}", plugin.handshake);
    ingest_all(&plugin).await;

    // CheckHealth: data file, schema version, row counts, last ingest, listeners
    let health = plugin.check_health().await;
    assert_eq!(health.status, 1, "OK: {}", health.message);
    let details = plugin.health_details().await;
    let store = &details["store"];
    assert_eq!(store["schema_version"], 6);
    assert_eq!(store["events"], 35 * 3 + 3 + 6 + 3);
    assert_eq!(store["metric_points"], 18 + 18 + 13 + 2 + 14 + 7);
    assert_eq!(store["spans"], 26 * 3 + 2 + 6 + 2);
    assert_eq!(store["sessions"], 6);
    assert!(store["last_ingest"].is_string());
    assert!(store["path"].as_str().unwrap().ends_with("claudecode.duckdb"));
    assert!(health.message.contains(&plugin.grpc_addr) && health.message.contains(&plugin.http_addr), "{}", health.message);

    // sessions
    let r = plugin.query(json!({"refId": "A", "queryType": "sessions"}), FROM, TO).await;
    assert_eq!(r.error, "");
    let f = &r.frames[0];
    assert_eq!(f.rows(), 6);
    for session in [GRPC_SESSION, HTTP_PB_SESSION, HTTP_JSON_SESSION] {
        let row = f.row_where("session_id", session);
        assert_eq!(f.field("team").values[row], "platform");
        assert_eq!(f.field("prompts").i64s()[row], 1);
        assert_eq!(f.field("api_calls").i64s()[row], 7);
        assert!((f.field("cost_usd").f64s()[row] - 0.048449).abs() < 1e-12);
        assert_eq!(f.field("tokens").i64s()[row], 39365);
        assert_eq!(f.field("input_tokens").i64s()[row], 147);
        assert_eq!(f.field("output_tokens").i64s()[row], 306);
        assert_eq!(f.field("cache_read_tokens").i64s()[row], 35328);
        assert_eq!(f.field("cache_creation_tokens").i64s()[row], 3584);
        assert_eq!(f.field("tool_calls").i64s()[row], 6);
        assert_eq!(f.field("events").i64s()[row], 35);
        assert_eq!(f.field("api_errors").i64s()[row], 0);
    }
    let exhaust = f.row_where("session_id", EXHAUST_SESSION);
    assert_eq!(f.field("api_errors").i64s()[exhaust], 1);
    assert_eq!(f.field("cost_usd").f64s()[exhaust], 0.0);
    let cumulative = f.row_where("session_id", CUMULATIVE_SESSION);
    assert!((f.field("cost_usd").f64s()[cumulative] - 0.018464).abs() < 1e-12);
    let gzip = f.row_where("session_id", GZIP_SESSION);
    assert!((f.field("cost_usd").f64s()[gzip] - 0.013535).abs() < 1e-12);
    assert_eq!(f.field("cost_usd").config["unit"], "currencyUSD");
    assert!(f.meta["executedQueryString"].as_str().unwrap().contains("FROM events"));

    // session timeline: every event of one session, ordered, with the counts per event name
    let r = plugin.query(json!({"refId": "A", "queryType": "session_timeline", "sessionId": GRPC_SESSION}), FROM, TO).await;
    let f = &r.frames[0];
    assert_eq!(f.rows(), 35);
    assert_eq!(f.field("event_sequence").i64s(), (0..35).collect::<Vec<_>>());
    let names = f.field("event_name").strs();
    let count = |n: &str| names.iter().filter(|x| *x == n).count();
    assert_eq!(
        [count("hook_registered"), count("at_mention"), count("user_prompt"), count("hook_execution_start"), count("api_request")],
        [2, 1, 1, 5, 7]
    );
    assert_eq!([count("assistant_response"), count("hook_execution_complete"), count("tool_decision"), count("tool_result")], [2, 5, 6, 6]);
    let cost: f64 = f.field("cost_usd").f64s().iter().filter(|c| !c.is_nan()).sum();
    assert!((cost - 0.048449).abs() < 1e-12);
    let tools: Vec<String> = f
        .field("tool_name")
        .values
        .iter()
        .zip(&names)
        .filter(|(_, n)| *n == "tool_result")
        .map(|(t, _)| t.as_str().unwrap().to_string())
        .collect();
    assert_eq!(tools, ["Bash", "Read", "Edit", "Write", "Bash", "Bash"]);
    let times = f.field("time").i64s();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert!(times[0] > FROM * 1000 && times[0] < TO * 1000, "times in ms, not 1970: {}", times[0]);

    // tool success rate over all sessions
    let r = plugin.query(json!({"refId": "A", "queryType": "tool_success_rate"}), FROM, TO).await;
    let f = &r.frames[0];
    assert_eq!(f.field("tool_name").strs(), ["Bash", "Edit", "Read", "Write"]);
    assert_eq!(f.field("calls").i64s(), [10, 3, 3, 3]);
    assert_eq!(f.field("successes").i64s(), [10, 3, 3, 3]);
    assert_eq!(f.field("failures").i64s(), [0, 0, 0, 0]);
    assert_eq!(f.field("success_rate").f64s(), [1.0, 1.0, 1.0, 1.0]);
    assert_eq!(f.field("accepts").i64s(), [10, 3, 3, 3]);
    assert_eq!(f.field("rejects").i64s(), [0, 0, 0, 0]);

    // cost by model: wide series (time + one field per model, label model), totals as a table
    let r = plugin.query(json!({"refId": "A", "queryType": "cost_by_model"}), FROM, TO).await;
    assert_eq!(r.frames.len(), 1);
    let series = &r.frames[0];
    assert_eq!(series.fields.len(), 2);
    assert!(series.fields[0].is_time());
    assert_eq!(series.frame_type(), "timeseries-wide");
    assert_eq!(series.fields[1].config["unit"], "currencyUSD", "labels and unit on one field");
    assert_eq!(series.fields[1].labels, json!({"model": "claude-opus-4-8[1m]"}));
    let total_series: f64 = series.fields[1].f64s().iter().sum();
    let expected = 0.048449 * 3.0 + 0.018464 + 0.013535;
    assert!((total_series - expected).abs() < 1e-9, "{total_series}");
    let r = plugin.query(json!({"refId": "A", "queryType": "cost_by_model", "format": "table"}), FROM, TO).await;
    let totals = &r.frames[0];
    assert_eq!(totals.field("model").strs(), ["claude-opus-4-8[1m]"]);
    assert_eq!(totals.field("cost_usd").config["unit"], "currencyUSD");
    assert!((totals.field("cost_usd").f64s()[0] - expected).abs() < 1e-9);
    assert_eq!(totals.field("input_tokens").i64s(), [147 * 3 + 27 + 12]);
    assert_eq!(totals.field("cache_creation_tokens").i64s(), [3584 * 3 + 2304 + 2048]);

    let r = plugin.query(json!({"refId": "A", "queryType": "cost_by_model", "source": "events", "format": "table"}), FROM, TO).await;
    let totals = &r.frames[0];
    assert_eq!(totals.field("model").strs(), ["claude-opus-4-8"]);
    assert_eq!(totals.field("requests").i64s(), [7 * 3 + 2 + 1]);
    assert!((totals.field("cost_usd").f64s()[0] - expected).abs() < 1e-9);
}

#[tokio::test]
async fn bad_queries_are_clear_per_query_errors_and_empty_results_are_no_data() {
    let plugin = Plugin::start().await;
    let results = plugin
        .query_many(
            vec![
                json!({"refId": "A", "queryType": "session_timeline"}),
                json!({"refId": "B", "queryType": "no_such_type"}),
                json!({"refId": "C", "queryType": "sessions"}),
            ],
            FROM,
            TO,
        )
        .await;
    assert!(results["A"].error.contains("sessionId"), "{}", results["A"].error);
    assert_eq!(results["A"].status, 400);
    assert!(results["B"].error.contains("no_such_type"), "{}", results["B"].error);
    assert_eq!(results["C"].error, "");
    assert_eq!(results["C"].frames.len(), 1);
    assert!(results["C"].frames[0].fields.is_empty(), "no data = a frame without fields");
}

#[tokio::test]
async fn receiver_errors_follow_the_otlp_spec() {
    let plugin = Plugin::start().await;
    let (status, _, _) = post(&plugin, "/v1/logs", "text/plain", None, b"hello".to_vec()).await;
    assert_eq!(status, 415);
    let (status, ct, body) = post(&plugin, "/v1/logs", "application/x-protobuf", None, vec![0xff, 0xff, 0xff]).await;
    assert_eq!(status, 400);
    assert_eq!(ct, "application/x-protobuf");
    assert!(!body.is_empty(), "a google.rpc.Status body");
    let (status, _, body) = post(&plugin, "/v1/logs", "application/json", None, b"{\"resourceLogs\": 5}".to_vec()).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("invalid OTLP/JSON logs"));
    let (status, _, _) = post(&plugin, "/v1/logs", "application/x-protobuf", Some("gzip"), b"not gzip".to_vec()).await;
    assert_eq!(status, 400);
    let (status, _, _) = post(&plugin, "/v1/logs", "application/x-protobuf", Some("br"), vec![]).await;
    assert_eq!(status, 415);
    let (status, _, _) = post(&plugin, "/v2/logs", "application/x-protobuf", None, vec![]).await;
    assert_eq!(status, 404);
    let get = reqwest::get(format!("http://{}/v1/logs", plugin.http_addr)).await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
    // Over the body limit: 413. Sent by hand, the answer read while the body is still being
    // written: the server refuses once it has read past the limit and closes the connection, so
    // a client that only reads after writing all 17 MB may see a broken pipe instead of the
    // answer (reqwest did, now and then).
    let head = format!("POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n", 17 << 20);
    let (mut read, mut write) = tokio::net::TcpStream::connect(&plugin.http_addr).await.unwrap().into_split();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        // fails with a broken pipe once the server has answered and closed: that is expected
        let _ = async {
            write.write_all(head.as_bytes()).await?;
            write.write_all(&vec![0u8; 17 << 20]).await
        }
        .await;
    });
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(30), tokio::io::AsyncReadExt::read(&mut read, &mut answer))
        .await
        .unwrap()
        .unwrap();
    writer.abort();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // a metric point without a value is refused as partial success, the rest is stored
    let body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", "sum": {"aggregationTemporality": 1, "dataPoints": [
        {"timeUnixNano": "1795296777531000000", "asDouble": 1.5}, {"timeUnixNano": "1795296777531000000"}]}}]}]}]});
    let (status, _, body) = post(&plugin, "/v1/metrics", "application/json", None, body.to_string().into_bytes()).await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["partialSuccess"]["rejectedDataPoints"], "1");
    assert_eq!(plugin.health_details().await["store"]["metric_points"], 1);
    // unknown resource paths are 404, not 500
    let resp = plugin.call_resource("GET", "nope", &[], vec![]).await;
    assert_eq!(resp.code, 404);
}

#[tokio::test]
async fn sigterm_closes_cleanly_and_data_survives_a_restart() {
    let mut plugin = Plugin::start().await;
    send_grpc(&plugin, &run("tools", "grpc")).await;
    let status = plugin.terminate().await;
    assert!(status.success(), "{status:?}");
    assert!(plugin.stdout_after_handshake().is_empty(), "nothing but the handshake on stdout");
    let dir = std::mem::replace(&mut plugin.data_dir, tempfile::tempdir().unwrap());
    drop(plugin);
    let plugin = Plugin::start_with(dir, "127.0.0.1:0", "127.0.0.1:0").await;
    let store = &plugin.health_details().await["store"];
    assert_eq!(store["events"], 35);
    assert_eq!(store["metric_points"], 18);
    assert_eq!(store["spans"], 26);
}

#[tokio::test]
async fn go_plugin_health_service_reports_serving() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let plugin = Plugin::start().await;
    let mut client = HealthClient::new(plugin.channel().await);
    for service in ["plugin", "pluginv2.Data", "pluginv2.Diagnostics", "pluginv2.Resource"] {
        let resp = client.check(HealthCheckRequest { service: service.into() }).await.unwrap_or_else(|e| panic!("{service}: {e}"));
        assert_eq!(resp.into_inner().status, 1, "{service} SERVING");
    }
}

#[tokio::test]
async fn standalone_serve_stores_and_stops_cleanly_on_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(common::binary())
        .args(["serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    let mut ready = 0;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("OTLP listener ready") || line.contains("store open") {
            ready += 1;
        }
        if ready == 3 {
            break;
        }
    }
    assert_eq!(ready, 3, "two listeners and the store");
    std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("store closed")), "{rest:?}");
    assert!(dir.path().join("claudecode.duckdb").exists());
}

#[tokio::test]
async fn health_says_why_when_no_data_directory_is_configured() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(common::binary())
        .env("grafana_plugin_type", "datasource")
        .env_remove("GF_PLUGIN_DATA_DIR")
        .env_remove("GF_PATHS_DATA")
        .env_remove("DATA_DIR")
        .env("GF_PLUGIN_OTLP_GRPC_LISTEN", "127.0.0.1:0")
        .env("GF_PLUGIN_OTLP_HTTP_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().split('|').nth(3).unwrap().to_string();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut client = grafana_plugin_sdk::pluginv2::diagnostics_client::DiagnosticsClient::new(channel);
    let mut message = String::new();
    for _ in 0..100 {
        let req = grafana_plugin_sdk::pluginv2::CheckHealthRequest { plugin_context: Some(common::plugin_context()), ..Default::default() };
        message = client.check_health(req).await.unwrap().into_inner().message;
        if !message.contains("still opening") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(message.contains("no data directory") && message.contains("GF_PLUGIN_DATA_DIR"), "{message}");
}

#[tokio::test]
async fn alert_rules_get_frames_server_side_expressions_accept() {
    let plugin = Plugin::start().await;
    ingest_all(&plugin).await;
    let mut queries = vec![
        json!({"queryType": "stat", "measure": "cost", "compare": "previous_period", "output": "change_ratio"}),
        json!({"queryType": "breakdown", "measure": "cost", "groupBy": "model"}),
        json!({"queryType": "breakdown", "measure": "cost", "groupBy": "team", "format": "table"}),
        json!({"queryType": "breakdown", "measure": "cache_hit_ratio", "groupBy": "user.id"}),
        json!({"queryType": "cost_by_model"}),
        json!({"queryType": "cost_by_model", "format": "table", "valueField": "cost_usd"}),
        json!({"queryType": "api_latency", "percentiles": [95]}),
        json!({"queryType": "api_latency", "groupBy": "model"}),
        json!({"queryType": "api_latency", "format": "table", "groupBy": "model", "valueField": "p95_duration_ms"}),
        json!({"queryType": "api_errors", "byStatusCode": false}),
        json!({"queryType": "api_errors"}),
        json!({"queryType": "api_errors", "format": "table", "valueField": "error_rate"}),
        json!({"queryType": "tool_success_rate", "valueField": "success_rate"}),
        json!({"queryType": "tool_costs", "valueField": "cost_per_call_usd"}),
        json!({"queryType": "tool_decisions", "valueField": "decisions"}),
        json!({"queryType": "tool_errors", "valueField": "failures"}),
        json!({"queryType": "productivity", "groupBy": "model", "valueField": "lines_added"}),
        json!({"queryType": "prompts", "valueField": "cost_usd"}),
        json!({"queryType": "sessions", "valueField": "cost_usd"}),
        json!({"queryType": "event_counts", "valueField": "count"}),
        json!({"queryType": "sql", "format": "time_series", "rawSql": "SELECT $__timeGroupAlias(time, 1m, 0), event_name, count(*) AS n FROM events WHERE $__timeFilter(time) GROUP BY ALL ORDER BY 1"}),
    ];
    for m in [
        "sessions",
        "active_sessions",
        "cost",
        "tokens",
        "cache_hit_ratio",
        "active_time",
        "lines_added",
        "commits",
        "pull_requests",
        "api_requests",
        "api_errors",
        "api_error_rate",
    ] {
        queries.push(json!({"queryType": "stat", "measure": m}));
    }
    for q in queries {
        let r = plugin.query_as_alert(q.clone(), FROM, TO).await;
        common::assert_alertable(&q.to_string(), &r);
    }
    // the numbers an alert sees: today's cost, and the share of failed API requests
    let r = plugin.query_as_alert(json!({"queryType": "stat", "measure": "cost"}), FROM, TO).await;
    let expected = 0.048449 * 3.0 + 0.018464 + 0.013535;
    assert!((r.frames[0].field("value").f64s()[0] - expected).abs() < 1e-9);
    let r = plugin.query_as_alert(json!({"queryType": "stat", "measure": "api_error_rate", "source": "events"}), FROM, TO).await;
    // 7 × 3 + 2 + 1 successful requests, one api_error (exhaust)
    assert!((r.frames[0].field("value").f64s()[0] - 1.0 / 25.0).abs() < 1e-12);
}

#[tokio::test]
async fn query_types_and_variable_values_are_resources() {
    let plugin = Plugin::start().await;
    ingest_all(&plugin).await;
    let r = plugin.call_resource("GET", "query-types", &[], vec![]).await;
    assert_eq!(r.code, 200);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(list.len(), 34);
    // every example runs through QueryData as it is
    for entry in &list {
        assert!(entry["description"].as_str().is_some_and(|d| !d.is_empty()));
        let r = plugin.query(entry["example"].clone(), FROM, TO).await;
        assert_eq!(r.error, "", "{}", entry["queryType"]);
    }
    let r = plugin.call_resource("GET", "variables?key=model", &[], vec![]).await;
    assert_eq!(r.code, 200);
    let values: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    // one model, whichever name its records carry (`claude-opus-4-8[1m]` on 2.1.197's metrics)
    assert_eq!(values, json!([{"text": "claude-opus-4-8", "value": "claude-opus-4-8"}]));
    let r = plugin.call_resource("GET", "variables?key=session&from=0&to=1", &[], vec![]).await;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&r.body).unwrap(), json!([]));
    let r = plugin.call_resource("GET", "variables?key=session", &[], vec![]).await;
    assert_eq!(serde_json::from_slice::<Vec<serde_json::Value>>(&r.body).unwrap().len(), 6);
    let r = plugin.call_resource("GET", "variables", &[], vec![]).await;
    assert_eq!(r.code, 400);
    let r = plugin.call_resource("GET", "variables?key=model&from=yesterday", &[], vec![]).await;
    assert_eq!(r.code, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("from"));
    let r = plugin.call_resource("GET", "endpoints", &[], vec![]).await;
    assert_eq!(r.code, 200);
    let endpoints: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(endpoints["grpc"]["state"], "listening");
    assert_eq!(endpoints["http"]["address"], plugin.http_addr.as_str());
}

/// After SIGTERM the next process binds the same OTLP ports at once (no TIME_WAIT refusal) and
/// finds what the first one stored.
#[tokio::test]
async fn a_restart_rebinds_the_same_ports_at_once() {
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let (grpc, http) = (free(), free());
    let mut first = Plugin::start_with(tempfile::tempdir().unwrap(), &grpc, &http).await;
    first.ingest_http(&run("tools", "http/protobuf")).await;
    assert!(first.terminate().await.success());
    let dir = first.kill9();
    let started = std::time::Instant::now();
    let second = Plugin::start_with(dir, &grpc, &http).await;
    assert_eq!((second.grpc_addr.as_str(), second.http_addr.as_str()), (grpc.as_str(), http.as_str()));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(second.health_details().await["store"]["events"], 35);
}
