//! Ingest authentication: with a token configured (grafana.ini or the datasource's secure
//! setting) both OTLP listeners refuse exports without `Authorization: Bearer <token>`, before
//! reading them; Grafana's own resource route stays authenticated by Grafana.
mod common;

use common::{plugin_context, test_fixtures, Plugin};
use grafana_plugin_sdk::pluginv2;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use otlp_json::tonic::collector::logs::v1 as otlp_json_types;
use serde_json::Value;

fn logs_fixture() -> (test_fixtures::Fixture, Vec<u8>) {
    let f = test_fixtures::fixtures().into_iter().find(|f| f.signal == "logs" && f.protocol == "http/protobuf").expect("a logs fixture");
    let body = test_fixtures::fixture(&f.file);
    (f, body)
}

async fn post(plugin: &Plugin, authorization: Option<&str>) -> (u16, String, Option<String>) {
    let (f, body) = logs_fixture();
    let mut req =
        reqwest::Client::new().post(format!("http://{}/v1/logs", plugin.http_addr)).header("content-type", &f.content_type).body(body);
    if let Some(e) = &f.content_encoding {
        req = req.header("content-encoding", e);
    }
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    let www = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
    (status, String::from_utf8_lossy(&resp.bytes().await.unwrap()).to_string(), www)
}

async fn grpc_export(plugin: &Plugin, token: Option<&str>) -> Result<(), tonic::Status> {
    let mut client = LogsServiceClient::connect(format!("http://{}", plugin.grpc_addr)).await.expect("connect");
    let mut request = tonic::Request::new(ExportLogsServiceRequest::default());
    if let Some(t) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    client.export(request).await.map(|_| ())
}

#[tokio::test]
async fn a_configured_token_is_required_on_both_listeners() {
    let plugin = Plugin::start_env(tempfile::tempdir().unwrap(), &[("GF_PLUGIN_INGEST_TOKEN", "s3cret-token")]).await;
    let (status, body, www) = post(&plugin, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(www.as_deref(), Some("Bearer"));
    assert!(body.contains("requires an ingest token"), "{body}");
    let (status, body, _) = post(&plugin, Some("Bearer wrong")).await;
    assert_eq!((status, body.contains("invalid ingest token")), (401, true), "{body}");
    assert!(!body.contains("s3cret"), "the error must not echo tokens: {body}");
    assert_eq!(post(&plugin, Some("Bearer s3cret-token")).await.0, 200);

    let refused = grpc_export(&plugin, None).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused}");
    assert_eq!(grpc_export(&plugin, Some("nope")).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    grpc_export(&plugin, Some("s3cret-token")).await.expect("authorized export");

    // nothing refused was stored: one authorized HTTP export only
    let details = plugin.health_details().await;
    let (f, _) = logs_fixture();
    assert_eq!(details["store"]["events"].as_u64(), Some(f.counts["log_records"]));

    // Grafana's resource route is authenticated by Grafana, not by the token
    let (f, body) = logs_fixture();
    let mut headers = vec![("content-type", f.content_type.as_str())];
    if let Some(e) = &f.content_encoding {
        headers.push(("content-encoding", e.as_str()));
    }
    let resp = plugin.call_resource("POST", "v1/logs", &headers, body).await;
    assert_eq!(resp.code, 200);
}

#[tokio::test]
async fn the_datasource_token_is_learned_from_grafana_and_kept_across_restarts() {
    let mut plugin = Plugin::start_env(tempfile::tempdir().unwrap(), &[]).await;
    assert_eq!(post(&plugin, None).await.0, 200, "open without a token");
    // Grafana sends the datasource's decrypted secure settings with every request
    let mut ctx = plugin_context();
    ctx.data_source_instance_settings.as_mut().unwrap().decrypted_secure_json_data.insert("ingestToken".into(), "ds-token".into());
    pluginv2::diagnostics_client::DiagnosticsClient::new(plugin.channel().await)
        .check_health(pluginv2::CheckHealthRequest { plugin_context: Some(ctx), ..Default::default() })
        .await
        .expect("CheckHealth");
    assert_eq!(post(&plugin, None).await.0, 401);
    assert_eq!(post(&plugin, Some("Bearer ds-token")).await.0, 200);
    assert!(plugin.terminate().await.success());
    let dir = plugin.kill9();
    let plugin = Plugin::start_env(dir, &[]).await;
    assert_eq!(post(&plugin, None).await.0, 401, "the learned token holds after a restart");
    assert_eq!(grpc_export(&plugin, Some("ds-token")).await.map_err(|s| s.code()), Ok(()));
}

/// Over a configured limit the whole export is refused with a clear 4xx / gRPC status, and
/// nothing of it is stored.
#[tokio::test]
async fn exports_over_the_limits_are_refused_whole() {
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let env =
        [("GF_PLUGIN_MAX_RECORDS_PER_REQUEST", "3"), ("GF_PLUGIN_MAX_ATTRIBUTES", "4"), ("GF_PLUGIN_MAX_ATTRIBUTE_VALUE_BYTES", "64")];
    let plugin = Plugin::start_env(tempfile::tempdir().unwrap(), &env).await;
    let request = |records: usize, attrs: usize, value_len: usize| {
        let attributes = (0..attrs)
            .map(|i| KeyValue {
                key: format!("k{i}"),
                value: Some(AnyValue { value: Some(any_value::Value::StringValue("v".repeat(value_len))) }),
            })
            .collect::<Vec<_>>();
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord { time_unix_nano: 1_795_296_000_000_000_000, attributes, ..Default::default() }; records],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    };
    let post = |req: ExportLogsServiceRequest| {
        let url = format!("http://{}/v1/logs", plugin.http_addr);
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&otlp_json(&req)).unwrap())
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let (status, body) = post(request(4, 1, 1)).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("4 records in one request exceed the limit of 3"), "{body}");
    let (status, body) = post(request(2, 5, 1)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("has 5 attributes") && body.contains("GF_PLUGIN_MAX_ATTRIBUTES"), "{body}");
    let (status, body) = post(request(2, 1, 65)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("65 bytes") && body.contains("GF_PLUGIN_MAX_ATTRIBUTE_VALUE_BYTES"), "{body}");
    let mut grpc = LogsServiceClient::connect(format!("http://{}", plugin.grpc_addr)).await.unwrap();
    assert_eq!(grpc.export(request(2, 1, 65)).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    assert_eq!(grpc.export(request(4, 1, 1)).await.unwrap_err().code(), tonic::Code::ResourceExhausted);
    // within the limits: stored; the refused ones left nothing behind
    assert_eq!(post(request(3, 4, 64)).await.0, 200);
    assert_eq!(plugin.health_details().await["store"]["events"], 3);
}

/// The OTLP/JSON form of a logs request, as an exporter sends it.
fn otlp_json(req: &ExportLogsServiceRequest) -> serde_json::Value {
    use prost::Message;
    let pb = req.encode_to_vec();
    // hex ids and camelCase come from the receiver's own OTLP/JSON types
    let msg = <otlp_json_types::ExportLogsServiceRequest as prost14::Message>::decode(&pb[..]).unwrap();
    serde_json::to_value(&msg).unwrap()
}

/// A wrong token is visible: in the log (reason, signal, protocol, peer) and in CheckHealth,
/// which turns red while every export is refused. Claude Code itself prints nothing and exits 0.
#[tokio::test]
async fn refused_exports_show_in_the_log_and_in_checkhealth() {
    let plugin = Plugin::start_env(tempfile::tempdir().unwrap(), &[("GF_PLUGIN_INGEST_TOKEN", "right")]).await;
    for _ in 0..3 {
        assert_eq!(grpc_export(&plugin, Some("wrong")).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    }
    assert_eq!(post(&plugin, Some("Bearer wrong")).await.0, 401);
    let logged: Vec<Value> = plugin.log_lines().iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let refused: Vec<&Value> = logged.iter().filter(|l| l["@message"] == "export refused").collect();
    assert!(!refused.is_empty(), "a log line for the refusals: {logged:?}");
    assert_eq!(refused[0]["reason"], "invalid ingest token");
    assert_eq!(refused[0]["signal"], "logs");
    assert_eq!(refused[0]["protocol"], "gRPC");
    assert!(refused[0]["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{}", refused[0]);
    assert!(refused.len() < 4, "rate-limited: {} lines for 4 refusals", refused.len());

    let health = plugin.check_health().await;
    assert_eq!(health.status, pluginv2::check_health_response::HealthStatus::Error as i32, "{}", health.message);
    assert!(health.message.starts_with("4 exports refused since "), "{}", health.message);
    assert!(health.message.contains("invalid ingest token (4, last from 127.0.0.1 over HTTP"), "{}", health.message);
    let details = plugin.health_details().await;
    assert_eq!(details["ingest"]["refusals"]["invalid_token"]["count"], 4);

    // once exports are stored again the check is green, and still names what was refused
    grpc_export(&plugin, Some("right")).await.expect("authorized");
    let health = plugin.check_health().await;
    assert_eq!(health.status, pluginv2::check_health_response::HealthStatus::Ok as i32, "{}", health.message);
    assert!(health.message.contains("4 exports refused since"), "{}", health.message);
}

/// `OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>` (the OTel spec's percent-encoding):
/// Claude Code decodes it for gRPC but sends it raw over HTTP; both are accepted.
#[tokio::test]
async fn a_percent_encoded_token_is_accepted_on_both_protocols() {
    let plugin = Plugin::start_env(tempfile::tempdir().unwrap(), &[("GF_PLUGIN_INGEST_TOKEN", "tok/en+1")]).await;
    assert_eq!(post(&plugin, Some("Bearer%20tok%2Fen%2B1")).await.0, 200);
    let mut client = LogsServiceClient::connect(format!("http://{}", plugin.grpc_addr)).await.expect("connect");
    let mut request = tonic::Request::new(ExportLogsServiceRequest::default());
    request.metadata_mut().insert("authorization", "Bearer%20tok%2Fen%2B1".parse().unwrap());
    client.export(request).await.expect("percent-encoded token over gRPC");
    assert_eq!(post(&plugin, Some("Bearer%20tok%2Fen%2B2")).await.0, 401, "a wrong token stays wrong");
}

/// A gRPC body that is not an OTLP message is the client's fault: INVALID_ARGUMENT (what the
/// OTLP spec asks for; tonic's own codec would say INTERNAL), counted as a refusal.
#[tokio::test]
async fn an_undecodable_grpc_export_is_invalid_argument() {
    let plugin = Plugin::start().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", plugin.grpc_addr)).unwrap().connect().await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/opentelemetry.proto.collector.logs.v1.LogsService/Export");
    let garbage = bytes::Bytes::from_static(b"\xff\xff\xff\xff not protobuf");
    let status = grpc.unary(tonic::Request::new(garbage), path, gpx_claudecode::bench::load::RawCodec).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("invalid protobuf logs export request"), "{}", status.message());
    assert_eq!(plugin.health_details().await["ingest"]["refusals"]["undecodable"]["count"], 1);
}
