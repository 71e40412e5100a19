//! OTLP clients for the benchmark: generated telemetry cut into export requests of a given size,
//! encoded once up front (protobuf or OTLP/JSON), then sent over loopback by concurrent clients
//! the way exporters do (each waits for its acknowledgement before the next export).
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::generate::Session;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson];
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Logs,
    Metrics,
}

impl Signal {
    fn grpc_path(self) -> &'static str {
        match self {
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        }
    }
    fn http_path(self) -> &'static str {
        match self {
            Signal::Logs => "v1/logs",
            Signal::Metrics => "v1/metrics",
        }
    }
}

/// One encoded export request and how many records it carries.
#[derive(Debug, Clone)]
pub struct Export {
    pub signal: Signal,
    pub body: Bytes,
    pub records: usize,
}

/// The sessions' log records re-cut into requests of exactly `batch` records (the last one may
/// be smaller); a session's records keep their resource and scope when split across requests.
pub fn log_batches(sessions: &[Session], batch: usize) -> Vec<ExportLogsServiceRequest> {
    let batch = batch.max(1);
    let mut out = Vec::new();
    let mut current = ExportLogsServiceRequest::default();
    let mut in_current = 0;
    for session in sessions {
        for resource_logs in &session.logs.resource_logs {
            for scope_logs in &resource_logs.scope_logs {
                let mut records = scope_logs.log_records.as_slice();
                while !records.is_empty() {
                    let take = (batch - in_current).min(records.len());
                    let mut scope = scope_logs.clone();
                    scope.log_records = records[..take].to_vec();
                    current.resource_logs.push(ResourceLogs {
                        resource: resource_logs.resource.clone(),
                        scope_logs: vec![scope],
                        schema_url: resource_logs.schema_url.clone(),
                    });
                    records = &records[take..];
                    in_current += take;
                    if in_current == batch {
                        out.push(std::mem::take(&mut current));
                        in_current = 0;
                    }
                }
            }
        }
    }
    if in_current > 0 {
        out.push(current);
    }
    out
}

/// All sessions' metric exports merged into one request.
pub fn merged_metrics(sessions: &[Session]) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest { resource_metrics: sessions.iter().flat_map(|s| s.metrics.resource_metrics.clone()).collect() }
}

pub fn log_records(request: &ExportLogsServiceRequest) -> usize {
    request.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len()).sum()
}

pub fn metric_points(request: &ExportMetricsServiceRequest) -> usize {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let points = |d: &Data| match d {
        Data::Gauge(g) => g.data_points.len(),
        Data::Sum(s) => s.data_points.len(),
        Data::Histogram(h) => h.data_points.len(),
        Data::ExponentialHistogram(h) => h.data_points.len(),
        Data::Summary(s) => s.data_points.len(),
    };
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter_map(|m| m.data.as_ref())
        .map(points)
        .sum()
}

/// Encodes a logs request as `protocol` sends it: protobuf, or OTLP/JSON (hex ids, camelCase).
pub fn encode_logs(request: &ExportLogsServiceRequest, protocol: Protocol) -> Result<Export, String> {
    let records = log_records(request);
    let pb = request.encode_to_vec();
    let body = match protocol {
        Protocol::Grpc | Protocol::HttpProtobuf => pb,
        Protocol::HttpJson => {
            let msg = <otlp_json::tonic::collector::logs::v1::ExportLogsServiceRequest as prost14::Message>::decode(&pb[..])
                .map_err(|e| format!("re-decoding for JSON: {e}"))?;
            serde_json::to_vec(&msg).map_err(|e| format!("encoding OTLP/JSON: {e}"))?
        }
    };
    Ok(Export { signal: Signal::Logs, body: body.into(), records })
}

pub fn encode_metrics(request: &ExportMetricsServiceRequest) -> Export {
    Export { signal: Signal::Metrics, body: request.encode_to_vec().into(), records: metric_points(request) }
}

/// A connection to the receiver for one client.
pub enum Client {
    Grpc(tonic::client::Grpc<tonic::transport::Channel>),
    Http { client: reqwest::Client, base: String, content_type: &'static str },
}

impl Client {
    pub async fn connect(protocol: Protocol, grpc_addr: &str, http_addr: &str) -> Result<Client, String> {
        match protocol {
            Protocol::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
                    .map_err(|e| e.to_string())?
                    .connect()
                    .await
                    .map_err(|e| format!("connecting to the OTLP/gRPC receiver: {e}"))?;
                Ok(Client::Grpc(tonic::client::Grpc::new(channel)))
            }
            Protocol::HttpProtobuf | Protocol::HttpJson => Ok(Client::Http {
                client: reqwest::Client::new(),
                base: format!("http://{http_addr}/"),
                content_type: if protocol == Protocol::HttpJson { "application/json" } else { "application/x-protobuf" },
            }),
        }
    }

    /// Sends one export and waits for its acknowledgement (which the receiver gives after commit).
    pub async fn send(&mut self, export: &Export) -> Result<(), String> {
        match self {
            Client::Grpc(grpc) => {
                grpc.ready().await.map_err(|e| format!("gRPC channel: {e}"))?;
                let path = http::uri::PathAndQuery::from_static(export.signal.grpc_path());
                grpc.unary(tonic::Request::new(export.body.clone()), path, RawCodec)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("gRPC export refused: {e}"))
            }
            Client::Http { client, base, content_type } => {
                let resp = client
                    .post(format!("{base}{}", export.signal.http_path()))
                    .header("content-type", *content_type)
                    .body(export.body.clone())
                    .send()
                    .await
                    .map_err(|e| format!("HTTP export: {e}"))?;
                if resp.status() != http::StatusCode::OK {
                    let status = resp.status();
                    return Err(format!("HTTP export refused: {status} {}", resp.text().await.unwrap_or_default()));
                }
                Ok(())
            }
        }
    }
}

/// Sends all `exports` with `clients` concurrent clients (client k sends every k-th export) and
/// returns the wall time until the last one is acknowledged.
pub async fn send_all(
    protocol: Protocol,
    grpc_addr: &str,
    http_addr: &str,
    exports: Arc<Vec<Export>>,
    clients: usize,
) -> Result<Duration, String> {
    let mut connected = Vec::new();
    for _ in 0..clients.max(1) {
        connected.push(Client::connect(protocol, grpc_addr, http_addr).await?);
    }
    let n = connected.len();
    let started = Instant::now();
    let tasks: Vec<_> = connected
        .into_iter()
        .enumerate()
        .map(|(k, mut client)| {
            let exports = exports.clone();
            tokio::spawn(async move {
                for export in exports.iter().skip(k).step_by(n) {
                    client.send(export).await?;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(started.elapsed())
}

/// A tonic codec for bodies that are already protobuf-encoded: the client sends bytes as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::generate::{Generator, Population};

    #[test]
    fn batches_hold_every_record_once_in_order() {
        let sessions = Generator::new(Population::default()).sessions_with_events(700);
        let total: usize = sessions.iter().map(|s| s.events).sum();
        let batches = log_batches(&sessions, 50);
        assert!(batches[..batches.len() - 1].iter().all(|b| log_records(b) == 50));
        assert_eq!(batches.iter().map(log_records).sum::<usize>(), total);
        let flat = |rs: &mut dyn Iterator<Item = &ResourceLogs>| -> Vec<u64> {
            rs.flat_map(|r| &r.scope_logs).flat_map(|s| &s.log_records).map(|l| l.time_unix_nano).collect()
        };
        let original = flat(&mut sessions.iter().flat_map(|s| &s.logs.resource_logs));
        let cut = flat(&mut batches.iter().flat_map(|b| &b.resource_logs));
        assert_eq!(original, cut);
        let points: usize = sessions.iter().map(|s| metric_points(&s.metrics)).sum();
        assert_eq!(metric_points(&merged_metrics(&sessions)), points);
    }

    #[test]
    fn json_bodies_decode_as_the_receiver_decodes_them() {
        let sessions = Generator::new(Population::default()).sessions_with_events(100);
        let request = &log_batches(&sessions, 100)[0];
        let json = encode_logs(request, Protocol::HttpJson).unwrap();
        let decoded =
            crate::ingest::decode::decode(crate::ingest::decode::Signal::Logs, crate::ingest::decode::Encoding::Json, &json.body).unwrap();
        match decoded {
            crate::ingest::decode::ExportRequest::Logs(r) => assert_eq!(&r, request),
            _ => panic!("not logs"),
        }
    }
}
