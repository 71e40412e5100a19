//! Request bodies → OTLP export requests: protobuf, OTLP/JSON, gzip.
use std::io::Read;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    Logs,
    Metrics,
    Traces,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
            Signal::Traces => "traces",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// The encoding for a `Content-Type` header value, `None` for anything OTLP does not define.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match mime.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

#[derive(Debug)]
pub enum ExportRequest {
    Logs(ExportLogsServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Traces(ExportTraceServiceRequest),
}

impl ExportRequest {
    pub fn signal(&self) -> Signal {
        match self {
            ExportRequest::Logs(_) => Signal::Logs,
            ExportRequest::Metrics(_) => Signal::Metrics,
            ExportRequest::Traces(_) => Signal::Traces,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid protobuf {signal} export request: {source}")]
    Protobuf { signal: &'static str, source: prost::DecodeError },
    #[error("invalid OTLP/JSON {signal} export request: {source}")]
    Json { signal: &'static str, source: serde_json::Error },
    #[error("invalid gzip body: {0}")]
    Gzip(std::io::Error),
    #[error("body is larger than {limit} bytes after decompression")]
    TooLarge { limit: usize },
    #[error("re-encoding OTLP/JSON {signal} request failed: {reason}")]
    Reencode { signal: &'static str, reason: String },
    /// A gRPC message that did not decode or decompress (tonic's words).
    #[error("{0}")]
    Grpc(String),
}

/// Decompresses a gzip body, refusing to inflate past `limit` bytes (gzip bombs).
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let mut reader = flate2::read::MultiGzDecoder::new(body).take(limit as u64 + 1);
    reader.read_to_end(&mut out).map_err(DecodeError::Gzip)?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(out)
}

pub fn decode(signal: Signal, encoding: Encoding, body: &[u8]) -> Result<ExportRequest, DecodeError> {
    match encoding {
        Encoding::Protobuf => decode_protobuf(signal, body),
        Encoding::Json => decode_json(signal, body),
    }
}

pub fn decode_protobuf(signal: Signal, body: &[u8]) -> Result<ExportRequest, DecodeError> {
    let err = |source| DecodeError::Protobuf { signal: signal.name(), source };
    Ok(match signal {
        Signal::Logs => ExportRequest::Logs(ExportLogsServiceRequest::decode(body).map_err(err)?),
        Signal::Metrics => ExportRequest::Metrics(ExportMetricsServiceRequest::decode(body).map_err(err)?),
        Signal::Traces => ExportRequest::Traces(ExportTraceServiceRequest::decode(body).map_err(err)?),
    })
}

/// OTLP/JSON: parsed with opentelemetry-proto 0.33's serde (hex ids, lowerCamelCase, enums as
/// numbers, int64 as number or string, empty values), then carried over to the 0.29 types the
/// rest of the pipeline (and tonic 0.12) uses through their shared protobuf wire format.
///
/// The body is read straight into the typed request. Only a body that sends an int64 value as a
/// string goes through a `serde_json::Value` tree first (about ten times the body in memory),
/// to turn those into numbers.
pub fn decode_json(signal: Signal, body: &[u8]) -> Result<ExportRequest, DecodeError> {
    use otlp_json::tonic::collector as j;
    fn typed<T: serde::de::DeserializeOwned>(body: &[u8]) -> serde_json::Result<T> {
        if !has_int64_string(body) {
            return serde_json::from_slice(body);
        }
        let mut value: serde_json::Value = serde_json::from_slice(body)?;
        int64_strings_to_numbers(&mut value);
        serde_json::from_value(value)
    }
    let json_err = |source| DecodeError::Json { signal: signal.name(), source };
    let bytes = match signal {
        Signal::Logs => prost14::Message::encode_to_vec(&typed::<j::logs::v1::ExportLogsServiceRequest>(body).map_err(json_err)?),
        Signal::Metrics => prost14::Message::encode_to_vec(&typed::<j::metrics::v1::ExportMetricsServiceRequest>(body).map_err(json_err)?),
        Signal::Traces => prost14::Message::encode_to_vec(&typed::<j::trace::v1::ExportTraceServiceRequest>(body).map_err(json_err)?),
    };
    decode_protobuf(signal, &bytes).map_err(|e| DecodeError::Reencode { signal: signal.name(), reason: e.to_string() })
}

/// Whether the body has an `asInt` or `intValue` member whose value is a string (JSON allows
/// whitespace around the colon). A false positive only costs the slower path.
fn has_int64_string(body: &[u8]) -> bool {
    [&b"\"asInt\""[..], &b"\"intValue\""[..]].iter().any(|key| {
        body.windows(key.len()).enumerate().filter(|(_, w)| w == key).any(|(at, _)| {
            let mut rest = body[at + key.len()..].iter().copied().skip_while(u8::is_ascii_whitespace);
            rest.next() == Some(b':') && rest.find(|b| !b.is_ascii_whitespace()) == Some(b'"')
        })
    })
}

/// The protobuf JSON mapping allows int64 as a string (`"asInt": "42"`); 0.33's serde silently
/// drops such metric values (the oneof is flattened), so they are turned into numbers first.
fn int64_strings_to_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "asInt" || key == "intValue" {
                    if let Some(n) = v.as_str().and_then(|s| s.trim().parse::<i64>().ok()) {
                        *v = serde_json::Value::from(n);
                        continue;
                    }
                }
                int64_strings_to_numbers(v);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(int64_strings_to_numbers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{fixture, fixtures};

    #[test]
    fn content_types() {
        assert_eq!(Encoding::from_content_type("application/x-protobuf"), Some(Encoding::Protobuf));
        assert_eq!(Encoding::from_content_type("application/json; charset=utf-8"), Some(Encoding::Json));
        assert_eq!(Encoding::from_content_type("text/plain"), None);
    }

    #[test]
    fn every_fixture_decodes_to_the_record_counts_of_the_manifest() {
        for f in fixtures() {
            let mut body = fixture(&f.file);
            if f.content_encoding.as_deref() == Some("gzip") {
                body = gunzip(&body, 64 << 20).unwrap();
            }
            let enc = if f.file.ends_with(".json") { Encoding::Json } else { Encoding::Protobuf };
            let req = decode(crate::ingest::testing::signal(&f), enc, &body).unwrap_or_else(|e| panic!("{}: {e}", f.file));
            let (records, points) = match &req {
                ExportRequest::Logs(r) => {
                    (r.resource_logs.iter().flat_map(|x| &x.scope_logs).map(|s| s.log_records.len()).sum::<usize>(), 0)
                }
                ExportRequest::Traces(r) => (r.resource_spans.iter().flat_map(|x| &x.scope_spans).map(|s| s.spans.len()).sum(), 0),
                ExportRequest::Metrics(r) => {
                    let metrics: Vec<_> = r.resource_metrics.iter().flat_map(|x| &x.scope_metrics).flat_map(|s| &s.metrics).collect();
                    let points = metrics
                        .iter()
                        .map(|m| match &m.data {
                            Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(s)) => s.data_points.len(),
                            _ => 0,
                        })
                        .sum();
                    (metrics.len(), points)
                }
            };
            let c = &f.counts;
            match crate::ingest::testing::signal(&f) {
                Signal::Logs => assert_eq!(records as u64, c["log_records"], "{}", f.file),
                Signal::Traces => assert_eq!(records as u64, c["spans"], "{}", f.file),
                Signal::Metrics => {
                    assert_eq!(records as u64, c["metrics"], "{}", f.file);
                    assert_eq!(points as u64, c["data_points"], "{}", f.file);
                }
            }
        }
    }

    #[test]
    fn json_and_protobuf_encodings_of_the_same_message_agree() {
        // The http/json fixture re-encoded by our decoder equals what decoding its
        // normalised .decoded.json (int64 as strings, enum names) gives.
        let body = fixture("http-json/tools-01-logs.json");
        let ExportRequest::Logs(a) = decode_json(Signal::Logs, &body).unwrap() else { panic!() };
        assert_eq!(a.resource_logs[0].scope_logs[0].log_records.len(), 15);
        let rec = &a.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.time_unix_nano, 1_795_296_777_531_000_000);
    }

    #[test]
    fn json_accepts_what_other_senders_send() {
        // int64 as strings, numeric timeUnixNano, empty AnyValue, histogram points
        let body = br#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"k","value":{}}]},"scopeMetrics":[{"metrics":[
            {"name":"c","sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[{"timeUnixNano":1700000000000000000,"asInt":"42"}]}},
            {"name":"h","histogram":{"aggregationTemporality":1,"dataPoints":[{"timeUnixNano":"1700000000000000000","count":"3","sum":4.5,"bucketCounts":["1","2"],"explicitBounds":[1.0]}]}}
        ]}]}]}"#;
        let ExportRequest::Metrics(m) = decode_json(Signal::Metrics, body).unwrap() else { panic!() };
        let metrics = &m.resource_metrics[0].scope_metrics[0].metrics;
        assert_eq!(metrics.len(), 2);
        let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(s)) = &metrics[0].data else { panic!() };
        assert_eq!(s.data_points[0].value, Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(42)));
        assert_eq!(s.data_points[0].time_unix_nano, 1_700_000_000_000_000_000);
        let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Histogram(h)) = &metrics[1].data else { panic!() };
        assert_eq!(h.data_points[0].count, 3);
        assert_eq!(h.data_points[0].bucket_counts, vec![1, 2]);
    }

    #[test]
    fn int64_strings_are_found_wherever_json_puts_them() {
        assert!(has_int64_string(br#"{"asInt":"42"}"#));
        assert!(has_int64_string(b"{\"intValue\" :\n \"42\"}"));
        assert!(!has_int64_string(br#"{"asInt":42,"intValue": 7,"stringValue":"\"asInt\""}"#));
        assert!(!has_int64_string(br#"{"asInt""#));
        // both paths give the same request
        let strings = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1","attributes":[{"key":"n","value":{"intValue":"42"}}]}]}]}]}"#;
        let numbers = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1","attributes":[{"key":"n","value":{"intValue":42}}]}]}]}]}"#;
        let (ExportRequest::Logs(a), ExportRequest::Logs(b)) =
            (decode_json(Signal::Logs, strings).unwrap(), decode_json(Signal::Logs, numbers).unwrap())
        else {
            panic!()
        };
        assert_eq!(a, b);
        assert_eq!(
            a.resource_logs[0].scope_logs[0].log_records[0].attributes[0].value.as_ref().unwrap().value,
            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(42))
        );
    }

    #[test]
    fn garbage_is_a_clear_error() {
        assert!(matches!(decode(Signal::Logs, Encoding::Protobuf, b"\xff\xff\xff"), Err(DecodeError::Protobuf { .. })));
        let e = decode(Signal::Logs, Encoding::Json, b"{\"resourceLogs\": 5}").unwrap_err();
        assert!(e.to_string().contains("invalid OTLP/JSON logs"), "{e}");
        assert!(matches!(gunzip(b"not gzip", 100), Err(DecodeError::Gzip(_))));
    }

    #[test]
    fn gzip_bombs_stop_at_the_limit() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 10 << 20]).unwrap();
        let small = enc.finish().unwrap();
        assert!(small.len() < 100_000);
        assert!(matches!(gunzip(&small, 1 << 20), Err(DecodeError::TooLarge { .. })));
        assert_eq!(gunzip(&small, 11 << 20).unwrap().len(), 10 << 20);
    }
}
