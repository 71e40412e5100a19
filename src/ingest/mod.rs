//! OTLP ingest: decoding (`decode`), attribute handling (`attrs`), OTLP → rows (`flatten`), and
//! the two receivers (`http`, `grpc`). The resource route of the plugin uses `export_body` too.
pub mod attrs;
pub mod auth;
pub mod decode;
pub mod flatten;
pub mod grpc;
pub mod http;
pub mod limits;

use decode::{DecodeError, Encoding, ExportRequest, Signal};

use crate::app::AppState;
use crate::store::StoreError;

/// What a successful export reports back: records refused (OTLP partial success), if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOutcome {
    pub rejected: u64,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// Over a per-request limit; nothing of the request was stored.
    #[error(transparent)]
    Limit(#[from] limits::LimitError),
    /// The store is not open yet (start-up) or failed to open; nothing was stored: retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The commit failed; nothing of the request was stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    /// HTTP status per the OTLP spec: 400 for bodies that will never decode, 413 over the limit,
    /// 503 (retryable) when nothing was stored because the store could not take it now.
    pub fn http_status(&self) -> ::http::StatusCode {
        use ::http::StatusCode;
        match self {
            IngestError::Decode(DecodeError::TooLarge { .. })
            | IngestError::BodyTooLarge { .. }
            | IngestError::Limit(limits::LimitError::TooManyRecords { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Decode(_) | IngestError::Limit(_) => StatusCode::BAD_REQUEST,
            IngestError::Unavailable(_) | IngestError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn grpc_status(&self) -> tonic::Status {
        match self {
            IngestError::Decode(DecodeError::TooLarge { .. })
            | IngestError::BodyTooLarge { .. }
            | IngestError::Limit(limits::LimitError::TooManyRecords { .. }) => tonic::Status::resource_exhausted(self.to_string()),
            IngestError::Decode(_) | IngestError::Limit(_) => tonic::Status::invalid_argument(self.to_string()),
            IngestError::Unavailable(_) | IngestError::Store(_) => tonic::Status::unavailable(self.to_string()),
        }
    }
}

/// Decodes a request body (gunzipping it first when `gzip`) and stores it.
pub async fn export_body(
    state: &AppState,
    signal: Signal,
    encoding: Encoding,
    body: &[u8],
    gzip: bool,
) -> Result<ExportOutcome, IngestError> {
    let limit = state.config.max_body_bytes;
    let inflated;
    let body = if gzip {
        inflated = decode::gunzip(body, limit)?;
        &inflated[..]
    } else {
        if body.len() > limit {
            return Err(IngestError::BodyTooLarge { limit });
        }
        body
    };
    let request = decode::decode(signal, encoding, body)?;
    export(state, request).await
}

/// Identity of an export: a 128-bit hash of its signal and protobuf encoding (prost encodes a
/// message deterministically, so the same body re-sent over any protocol has the same key).
pub fn request_key(request: &ExportRequest) -> u128 {
    use prost::Message;
    let (tag, bytes) = match request {
        ExportRequest::Logs(r) => (b'l', r.encode_to_vec()),
        ExportRequest::Metrics(r) => (b'm', r.encode_to_vec()),
        ExportRequest::Traces(r) => (b't', r.encode_to_vec()),
    };
    xxhash_rust::xxh3::xxh3_128_with_seed(&bytes, u64::from(tag))
}

/// Stores a decoded export request; returns once it is committed.
pub async fn export(state: &AppState, request: ExportRequest) -> Result<ExportOutcome, IngestError> {
    limits::check(&request, &state.config.ingest_limits)?;
    let store = state.store().map_err(IngestError::Unavailable)?;
    let now = chrono::Utc::now().timestamp_micros();
    let mut batch = match &request {
        ExportRequest::Logs(r) => flatten::logs(r, now),
        ExportRequest::Metrics(r) => flatten::metrics(r, now),
        ExportRequest::Traces(r) => flatten::traces(r, now),
    };
    batch.dedup_key = Some(request_key(&request));
    let rejected = batch.rejected;
    let message = batch.reject_reason.clone().unwrap_or_default();
    if rejected > 0 {
        tracing::warn!(rejected, reason = %message, "records refused");
    }
    if !batch.is_empty() {
        store.write(batch).await?;
    }
    Ok(ExportOutcome { rejected, message })
}

/// OTLP export responses, per signal and encoding.
pub mod response {
    use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceResponse};
    use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsPartialSuccess, ExportMetricsServiceResponse};
    use opentelemetry_proto::tonic::collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse};
    use prost::Message;

    use super::decode::{Encoding, Signal};
    use super::ExportOutcome;

    pub fn logs(o: &ExportOutcome) -> ExportLogsServiceResponse {
        ExportLogsServiceResponse {
            partial_success: (o.rejected > 0)
                .then(|| ExportLogsPartialSuccess { rejected_log_records: o.rejected as i64, error_message: o.message.clone() }),
        }
    }
    pub fn metrics(o: &ExportOutcome) -> ExportMetricsServiceResponse {
        ExportMetricsServiceResponse {
            partial_success: (o.rejected > 0)
                .then(|| ExportMetricsPartialSuccess { rejected_data_points: o.rejected as i64, error_message: o.message.clone() }),
        }
    }
    pub fn traces(o: &ExportOutcome) -> ExportTraceServiceResponse {
        ExportTraceServiceResponse {
            partial_success: (o.rejected > 0)
                .then(|| ExportTracePartialSuccess { rejected_spans: o.rejected as i64, error_message: o.message.clone() }),
        }
    }

    /// The response body: an empty message (`{}` in JSON) on full success.
    pub fn body(signal: Signal, encoding: Encoding, o: &ExportOutcome) -> Vec<u8> {
        match encoding {
            Encoding::Protobuf => match signal {
                Signal::Logs => logs(o).encode_to_vec(),
                Signal::Metrics => metrics(o).encode_to_vec(),
                Signal::Traces => traces(o).encode_to_vec(),
            },
            Encoding::Json => {
                if o.rejected == 0 {
                    return b"{}".to_vec();
                }
                let key = match signal {
                    Signal::Logs => "rejectedLogRecords",
                    Signal::Metrics => "rejectedDataPoints",
                    Signal::Traces => "rejectedSpans",
                };
                serde_json::json!({"partialSuccess": {key: o.rejected.to_string(), "errorMessage": o.message}}).to_string().into_bytes()
            }
        }
    }
}

/// Test helpers: a store in a temporary directory with fixtures ingested as the receivers do.
#[cfg(test)]
pub mod testing {
    use super::decode::{Encoding, Signal};
    use crate::test_fixtures::{fixture, Fixture};

    pub fn signal(f: &Fixture) -> Signal {
        match f.signal.as_str() {
            "logs" => Signal::Logs,
            "metrics" => Signal::Metrics,
            "traces" => Signal::Traces,
            other => panic!("unknown signal {other:?} in the manifest"),
        }
    }

    pub async fn state_with(fixtures: &[Fixture]) -> (std::sync::Arc<crate::app::AppState>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = crate::config::Config::standalone(Some(dir.path().to_path_buf()), None, None);
        let state = crate::app::AppState::new(config);
        state.open_store().await.expect("store opens");
        for f in fixtures {
            let encoding = if f.file.ends_with(".json") { Encoding::Json } else { Encoding::Protobuf };
            let gzip = f.content_encoding.as_deref() == Some("gzip");
            let outcome = super::export_body(&state, signal(f), encoding, &fixture(&f.file), gzip).await.expect("fixture ingests");
            assert_eq!(outcome.rejected, 0, "{}: {}", f.file, outcome.message);
        }
        (state, dir)
    }
}

#[cfg(test)]
mod resend_tests {
    use super::decode::{Encoding, Signal};
    use crate::test_fixtures::{fixture, fixtures};

    /// Claude Code re-sends an identical body after 429/503: the copy is acknowledged and
    /// dropped, in the same process and after a restart, whatever protocol carries it.
    #[tokio::test]
    async fn an_identical_resend_is_acknowledged_and_dropped() {
        let f =
            fixtures().into_iter().find(|f| f.signal == "logs" && f.protocol == "http/protobuf" && f.counts["log_records"] > 1).unwrap();
        let gzip = f.content_encoding.as_deref() == Some("gzip");
        let (state, dir) = super::testing::state_with(std::slice::from_ref(&f)).await;
        let events = |state: std::sync::Arc<crate::app::AppState>| async move { state.store().unwrap().health().await.unwrap().events };
        let once = events(state.clone()).await;
        assert_eq!(once as u64, f.counts["log_records"]);
        let again = super::export_body(&state, Signal::Logs, Encoding::Protobuf, &fixture(&f.file), gzip).await.unwrap();
        assert_eq!(again.rejected, 0);
        assert_eq!(events(state.clone()).await, once, "re-send stored twice");
        // the same request as a gRPC message (already decoded) is the same export too
        let body = if gzip { super::decode::gunzip(&fixture(&f.file), 1 << 26).unwrap() } else { fixture(&f.file) };
        let decoded = super::decode::decode(Signal::Logs, Encoding::Protobuf, &body).unwrap();
        super::export(&state, decoded).await.unwrap();
        assert_eq!(events(state.clone()).await, once);
        state.store().unwrap().close().await;
        drop(state);
        // after a restart the key is still known
        let state = crate::app::AppState::new(crate::config::Config::standalone(Some(dir.path().to_path_buf()), None, None));
        state.open_store().await.unwrap();
        super::export_body(&state, Signal::Logs, Encoding::Protobuf, &fixture(&f.file), gzip).await.unwrap();
        assert_eq!(events(state.clone()).await, once);
        // a different export is stored as usual
        let other = fixtures().into_iter().find(|g| g.signal == "logs" && g.protocol == "http/protobuf" && g.file != f.file).unwrap();
        let g_gzip = other.content_encoding.as_deref() == Some("gzip");
        super::export_body(&state, Signal::Logs, Encoding::Protobuf, &fixture(&other.file), g_gzip).await.unwrap();
        assert_eq!(events(state.clone()).await as u64, f.counts["log_records"] + other.counts["log_records"]);
    }
}
