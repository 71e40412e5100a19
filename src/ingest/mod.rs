//! OTLP ingest: decoding (`decode`), attribute handling (`attrs`), OTLP → rows (`flatten`), the
//! two receivers (`http`, `grpc`) and what operators see of it (`stats`). The receivers (and the
//! plugin's resource route) get an `Ingest` handle: the store, the token check, the limits and
//! the hold policy, nothing else of the process.
pub mod attrs;
pub mod auth;
pub mod decode;
pub mod flatten;
pub mod grpc;
pub mod http;
pub mod limits;
pub mod stats;
pub mod tls;
pub mod transcript;

use std::sync::Arc;
use std::time::Duration;

use decode::{DecodeError, Encoding, ExportRequest, Signal};
use stats::{Origin, RefusalReason};

use crate::store::{StoreError, StoreHandle, Unavailable};

/// What a successful export reports back: records refused (OTLP partial success), if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOutcome {
    pub rejected: u64,
    pub message: String,
}

/// How exports are checked and how long they may wait.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub limits: limits::Limits,
    /// Largest body, compressed and after decompression (`GF_PLUGIN_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// How long an export waits for the store to open or reopen and for the writer to take it
    /// (`GF_PLUGIN_STORE_WAIT_SECONDS`); it is refused only after that.
    pub wait: Duration,
    /// Most bytes of exports held in memory at once, waiting or being stored
    /// (`GF_PLUGIN_INGEST_HOLD_MAX`); an export past it is refused.
    pub hold_max_bytes: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            limits: limits::Limits::default(),
            max_body_bytes: crate::config::DEFAULT_MAX_BODY_BYTES,
            wait: DEFAULT_STORE_WAIT,
            hold_max_bytes: DEFAULT_HOLD_MAX_BYTES,
        }
    }
}

/// Long enough for a restart that replays a full WAL (the 128 MB checkpoint threshold replays
/// in about a second on a laptop disk; slow network disks take several times that).
pub const DEFAULT_STORE_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_HOLD_MAX_BYTES: usize = 256 << 20;

/// The receivers' handle on the process.
pub struct Ingest {
    pub store: StoreHandle,
    pub auth: auth::IngestAuth,
    pub settings: IngestSettings,
    pub stats: stats::IngestStats,
    /// The data directory, whose `prices.json` prices imported calls.
    pub prices_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Unauthorized(#[from] auth::AuthError),
    /// Not an OTLP request (HTTP path, method, content type or encoding).
    #[error(transparent)]
    Request(#[from] http::RequestError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("request body exceeds the limit of {limit} bytes (GF_PLUGIN_MAX_BODY_BYTES)")]
    BodyTooLarge { limit: usize },
    /// Over a per-request limit; nothing of the request was stored.
    #[error(transparent)]
    Limit(#[from] limits::LimitError),
    /// The store did not open within the wait, or cannot open; nothing was stored.
    #[error("store unavailable: {0}; nothing of this export was stored")]
    Unavailable(#[from] Unavailable),
    #[error(
        "{held} bytes of exports are already waiting to be stored, the most held at once (GF_PLUGIN_INGEST_HOLD_MAX); \
         nothing of this export was stored, retry later"
    )]
    HoldFull { held: usize },
    /// The commit failed, or did not happen within the wait.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("storing the export failed: {0}")]
    Task(String),
    /// The data directory's price file cannot be used; nothing was imported.
    #[error("{0}; nothing was imported")]
    Prices(String),
}

impl IngestError {
    /// Why, in the words of the refusal counts.
    pub fn reason(&self) -> RefusalReason {
        use auth::AuthError;
        match self {
            IngestError::Unauthorized(AuthError::Missing) => RefusalReason::MissingToken,
            IngestError::Unauthorized(AuthError::Invalid) => RefusalReason::InvalidToken,
            IngestError::Unauthorized(AuthError::Malformed) => RefusalReason::MalformedAuthorization,
            IngestError::Request(_) => RefusalReason::NotOtlp,
            IngestError::Decode(DecodeError::TooLarge { .. }) | IngestError::BodyTooLarge { .. } => RefusalReason::TooLarge,
            IngestError::Decode(_) => RefusalReason::Undecodable,
            IngestError::Limit(_) => RefusalReason::OverLimit,
            IngestError::Unavailable(Unavailable::Closed) | IngestError::Store(StoreError::Closed) => RefusalReason::ShuttingDown,
            IngestError::Unavailable(_) | IngestError::Store(StoreError::Invalidated(_)) => RefusalReason::StoreUnavailable,
            IngestError::HoldFull { .. } => RefusalReason::HoldFull,
            IngestError::Store(StoreError::Overloaded(_) | StoreError::NotYetCommitted(_)) => RefusalReason::WriterBehind,
            IngestError::Store(StoreError::DiskFull(_)) => RefusalReason::DiskFull,
            IngestError::Store(_) | IngestError::Task(_) | IngestError::Prices(_) => RefusalReason::WriteFailed,
        }
    }

    /// HTTP status per the OTLP spec: 400 for bodies that will never decode, 413 over the limit,
    /// 503 (retryable) when nothing was stored because the store could not take it now.
    pub fn http_status(&self) -> ::http::StatusCode {
        use ::http::StatusCode;
        match self {
            IngestError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            IngestError::Request(r) => r.http_status(),
            IngestError::Decode(DecodeError::TooLarge { .. })
            | IngestError::BodyTooLarge { .. }
            | IngestError::Limit(limits::LimitError::TooManyRecords { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Decode(_) | IngestError::Limit(_) => StatusCode::BAD_REQUEST,
            IngestError::Unavailable(_) | IngestError::HoldFull { .. } | IngestError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Task(_) | IngestError::Prices(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn grpc_status(&self) -> tonic::Status {
        let message = self.to_string();
        match self {
            IngestError::Unauthorized(_) => tonic::Status::unauthenticated(message),
            IngestError::Request(r) => tonic::Status::new(r.grpc_code(), message),
            IngestError::Decode(DecodeError::TooLarge { .. })
            | IngestError::BodyTooLarge { .. }
            | IngestError::Limit(limits::LimitError::TooManyRecords { .. }) => tonic::Status::resource_exhausted(message),
            IngestError::Decode(_) | IngestError::Limit(_) => tonic::Status::invalid_argument(message),
            IngestError::Unavailable(_) | IngestError::HoldFull { .. } | IngestError::Store(_) => tonic::Status::unavailable(message),
            IngestError::Task(_) | IngestError::Prices(_) => tonic::Status::internal(message),
        }
    }
}

impl Ingest {
    pub fn new(store: StoreHandle, auth: auth::IngestAuth, settings: IngestSettings) -> Arc<Ingest> {
        Arc::new(Ingest { store, auth, settings, stats: stats::IngestStats::default(), prices_dir: None })
    }

    /// As `new`, pricing imported calls with the data directory's prices.
    pub fn with_prices(
        store: StoreHandle,
        auth: auth::IngestAuth,
        settings: IngestSettings,
        prices_dir: Option<std::path::PathBuf>,
    ) -> Arc<Ingest> {
        Arc::new(Ingest { store, auth, settings, stats: stats::IngestStats::default(), prices_dir })
    }

    /// Checks a request's token before its body is read; a refusal is counted and logged.
    pub fn authorize(&self, authorization: Option<&str>, signal: Option<Signal>, origin: &Origin) -> Result<(), IngestError> {
        self.auth.check(authorization).map_err(|e| self.refuse(IngestError::Unauthorized(e), signal, origin))
    }

    /// Counts and logs a refused export; returns the error for the response.
    pub fn refuse(&self, e: IngestError, signal: Option<Signal>, origin: &Origin) -> IngestError {
        self.stats.refused(e.reason(), signal, origin, &e.to_string());
        e
    }

    /// Decodes a request body (gunzipping it first when `gzip`) and stores it.
    pub async fn export_body(
        self: &Arc<Self>,
        signal: Signal,
        encoding: Encoding,
        body: &[u8],
        gzip: bool,
        origin: Origin,
    ) -> Result<ExportOutcome, IngestError> {
        let request = self.decode_body(signal, encoding, body, gzip).map_err(|e| self.refuse(e, Some(signal), &origin))?;
        self.export(request, origin).await
    }

    fn decode_body(&self, signal: Signal, encoding: Encoding, body: &[u8], gzip: bool) -> Result<ExportRequest, IngestError> {
        let limit = self.settings.max_body_bytes;
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
        Ok(decode::decode(signal, encoding, body)?)
    }

    /// The store, waited for until `deadline` while it opens or reopens.
    async fn open_store(&self, deadline: tokio::time::Instant) -> Result<crate::store::Store, IngestError> {
        match self.store.get() {
            Ok(store) => Ok(store),
            Err(Unavailable::Opening(_) | Unavailable::Reopening { .. }) => {
                let _waiting = self.stats.waiting();
                Ok(self.store.wait(deadline.saturating_duration_since(tokio::time::Instant::now())).await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stores calls imported from transcripts, priced at the list prices in effect; returns once
    /// committed, with what was new. Calls telemetry or an earlier import already has are not
    /// stored again. Waits for the store like an export does.
    pub async fn import(&self, request: transcript::ImportRequest) -> Result<transcript::ImportOutcome, IngestError> {
        let prices = crate::prices::PriceTable::load(self.prices_dir.as_deref()).map_err(|e| IngestError::Prices(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + self.settings.wait;
        let mut unpriced: Vec<String> =
            request.calls.iter().filter(|c| prices.lookup(&c.model).is_none()).map(|c| c.model.clone()).collect();
        unpriced.sort();
        unpriced.dedup();
        loop {
            let store = self.open_store(deadline).await?;
            let now = chrono::Utc::now().timestamp_micros();
            let events = request.calls.iter().map(|c| c.to_event(now, &prices, &request.user)).collect();
            let batch = crate::store::rows::Batch { events, transcript: true, ..Default::default() };
            match store.write(batch, deadline).await {
                Ok(o) => {
                    return Ok(transcript::ImportOutcome {
                        new: o.events - o.replaced,
                        known: o.known,
                        replaced: o.replaced,
                        unpriced_models: unpriced,
                    })
                }
                Err(StoreError::Invalidated(_)) if tokio::time::Instant::now() < deadline => {
                    drop(store);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Stores a decoded export request; returns once it is committed. It runs as a task of its
    /// own, so a client that hangs up while its export waits does not take the export with it.
    pub async fn export(self: &Arc<Self>, request: ExportRequest, origin: Origin) -> Result<ExportOutcome, IngestError> {
        let signal = request.signal();
        let this = self.clone();
        let stored = tokio::spawn(async move { this.store_request(request, &origin).await.map_err(|e| (e, origin)) }).await;
        match stored {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err((e, origin))) => Err(self.refuse(e, Some(signal), &origin)),
            Err(e) => Err(self.refuse(IngestError::Task(e.to_string()), Some(signal), &origin)),
        }
    }

    /// The store is waited for while it opens or reopens, the writer while it is behind, both
    /// within `settings.wait`; a commit the database lost to a fatal error is stored again once
    /// it is reopened (its key drops the copy, should the first one have made it).
    async fn store_request(&self, request: ExportRequest, origin: &Origin) -> Result<ExportOutcome, IngestError> {
        limits::check(&request, &self.settings.limits)?;
        let (key, bytes) = request_key(&request);
        let _held = self.stats.hold(bytes, self.settings.hold_max_bytes).map_err(|held| IngestError::HoldFull { held })?;
        let deadline = tokio::time::Instant::now() + self.settings.wait;
        let signal = request.signal();
        loop {
            let store = self.open_store(deadline).await?;
            let now = chrono::Utc::now().timestamp_micros();
            let mut batch = match &request {
                ExportRequest::Logs(r) => flatten::logs(r, now),
                ExportRequest::Metrics(r) => flatten::metrics(r, now),
                ExportRequest::Traces(r) => flatten::traces(r, now),
            };
            batch.dedup_key = Some(key);
            let outcome = ExportOutcome { rejected: batch.rejected, message: batch.reject_reason.clone().unwrap_or_default() };
            if outcome.rejected > 0 {
                tracing::warn!(rejected = outcome.rejected, reason = %outcome.message, "records refused");
            }
            if batch.is_empty() {
                self.stats.stored(signal, 0, origin);
                return Ok(outcome);
            }
            let records = batch.len();
            match store.write(batch, deadline).await {
                Ok(_) => {
                    self.stats.stored(signal, records, origin);
                    return Ok(outcome);
                }
                Err(StoreError::Invalidated(_)) if tokio::time::Instant::now() < deadline => {
                    // the store is being reopened: wait for it, then store the export again
                    drop(store);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Identity of an export, and its size: a 128-bit hash of its signal and protobuf encoding
/// (prost encodes a message deterministically, so the same body re-sent over any protocol has
/// the same key) and the encoding's length.
pub fn request_key(request: &ExportRequest) -> (u128, usize) {
    use prost::Message;
    let (tag, bytes) = match request {
        ExportRequest::Logs(r) => (b'l', r.encode_to_vec()),
        ExportRequest::Metrics(r) => (b'm', r.encode_to_vec()),
        ExportRequest::Traces(r) => (b't', r.encode_to_vec()),
    };
    (xxhash_rust::xxh3::xxh3_128_with_seed(&bytes, u64::from(tag)), bytes.len())
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
    use super::stats::{Origin, Protocol};
    use crate::test_fixtures::Fixture;

    /// Where test exports come from.
    pub const ORIGIN: Origin = Origin { protocol: Protocol::Http, peer: None };

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
            let outcome = state.ingest.export_body(signal(f), encoding, &f.body(), gzip, ORIGIN).await.expect("fixture ingests");
            assert_eq!(outcome.rejected, 0, "{}: {}", f.file, outcome.message);
        }
        (state, dir)
    }
}

#[cfg(test)]
mod resend_tests {
    use super::decode::{Encoding, Signal};
    use super::testing::ORIGIN;
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
        let again = state.ingest.export_body(Signal::Logs, Encoding::Protobuf, &fixture(&f.file), gzip, ORIGIN).await.unwrap();
        assert_eq!(again.rejected, 0);
        assert_eq!(events(state.clone()).await, once, "re-send stored twice");
        // the same request as a gRPC message (already decoded) is the same export too
        let body = if gzip { super::decode::gunzip(&fixture(&f.file), 1 << 26).unwrap() } else { fixture(&f.file) };
        let decoded = super::decode::decode(Signal::Logs, Encoding::Protobuf, &body).unwrap();
        state.ingest.export(decoded, ORIGIN).await.unwrap();
        assert_eq!(events(state.clone()).await, once);
        state.store().unwrap().close().await;
        drop(state);
        // after a restart the key is still known
        let state = crate::app::AppState::new(crate::config::Config::standalone(Some(dir.path().to_path_buf()), None, None));
        state.open_store().await.unwrap();
        state.ingest.export_body(Signal::Logs, Encoding::Protobuf, &fixture(&f.file), gzip, ORIGIN).await.unwrap();
        assert_eq!(events(state.clone()).await, once);
        // a different export is stored as usual
        let other = fixtures().into_iter().find(|g| g.signal == "logs" && g.protocol == "http/protobuf" && g.file != f.file).unwrap();
        let g_gzip = other.content_encoding.as_deref() == Some("gzip");
        state.ingest.export_body(Signal::Logs, Encoding::Protobuf, &fixture(&other.file), g_gzip, ORIGIN).await.unwrap();
        assert_eq!(events(state.clone()).await as u64, f.counts["log_records"] + other.counts["log_records"]);
    }
}
