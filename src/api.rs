//! The local API of a running plugin or `serve`, beside OTLP on the HTTP listener: the process
//! that owns the DuckDB file answers the terminal commands (`report`, `query`, `sql`, `export`,
//! `status`) and scripts with the same code Grafana's requests run. Open to loopback clients
//! while no ingest token is set; with one, every request must carry it (any address).
//!
//! `POST /api/v1/query` `{"query": {…typed query…}, "fromMs", "toMs"}` → `{"frames": [FrameJson]}`;
//! `GET /api/v1/status` → `Health`; `GET /api/v1/export?session=ID&format=otlp-json&signal=logs`.
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::export::{ExportFormat, ExportSignal};
use crate::frame::FrameJson;
use crate::query::{self, QueryContext, QueryError, QuerySettings};
use crate::store::{Store, StoreError};

pub const QUERY_PATH: &str = "/api/v1/query";
pub const STATUS_PATH: &str = "/api/v1/status";
pub const EXPORT_PATH: &str = "/api/v1/export";

/// The file in the data directory that tells terminal commands where the owner of the DuckDB
/// file listens.
pub const RECEIVER_FILE: &str = "receiver.json";

/// A typed query of the catalog over a range, as a dashboard panel sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryRequest {
    pub query: serde_json::Value,
    pub from_ms: i64,
    pub to_ms: i64,
    #[serde(default)]
    pub interval_ms: i64,
    #[serde(default)]
    pub max_data_points: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryResponse {
    pub frames: Vec<FrameJson>,
}

/// The role of the local API's callers (loopback users, or holders of the ingest token, which
/// every laptop sending telemetry has): content only where Viewers may read it.
pub const LOCAL_API_ROLE: crate::query::access::Role = crate::query::access::Role::Viewer;

/// 9999-12-31T23:59:59.999Z in ms.
const MAX_MS: i64 = 253_402_300_799_999;

/// Runs a query request on a reader connection (blocking): the one path for the local API and
/// for terminal commands on the file.
pub fn run_query(
    conn: &duckdb::Connection,
    request: &QueryRequest,
    settings: &QuerySettings,
    limits: query::raw::Limits,
) -> Result<QueryResponse, QueryError> {
    // 1970 to 9999: every query may look one range length back (a stat's previous period)
    let time = |ms: i64, what: &str| {
        (0..=MAX_MS)
            .contains(&ms)
            .then(|| DateTime::<Utc>::from_timestamp_millis(ms))
            .flatten()
            .ok_or_else(|| QueryError::Invalid(format!("{what} {ms} is not a time in ms since the epoch between 1970 and 9999")))
    };
    let (from, to) = (time(request.from_ms, "fromMs")?, time(request.to_ms, "toMs")?);
    if from > to {
        return Err(QueryError::Invalid(format!("the range ends ({to}) before it starts ({from})")));
    }
    let parsed = query::model::parse(&request.query, "")?;
    let ctx = QueryContext { from, to, interval_ms: request.interval_ms.max(0), max_data_points: request.max_data_points, limits };
    let frames = query::run(conn, &parsed, &ctx, settings)?;
    Ok(QueryResponse { frames: frames.iter().map(crate::frame::Frame::to_json).collect() })
}

/// As `run_query` on the store's reader pool.
pub async fn query_store(
    store: &Store,
    request: QueryRequest,
    settings: QuerySettings,
    limits: query::raw::Limits,
) -> Result<QueryResponse, StoreError> {
    store.read(move |conn| run_query(conn, &request, &settings, limits).map_err(StoreError::from)).await
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExportParams {
    pub session: String,
    #[serde(default)]
    pub format: ExportFormat,
    /// Comma-separated: logs, metrics, traces; all when absent.
    #[serde(default)]
    pub signal: Option<String>,
}

pub fn parse_signals(list: Option<&str>) -> Result<Vec<ExportSignal>, String> {
    list.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "logs" => Ok(ExportSignal::Logs),
            "metrics" => Ok(ExportSignal::Metrics),
            "traces" => Ok(ExportSignal::Traces),
            other => Err(format!("signal {other:?} is not one of logs, metrics, traces")),
        })
        .collect()
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(QUERY_PATH, post(query_route))
        .route(STATUS_PATH, get(status_route))
        .route(EXPORT_PATH, get(export_route))
        .layer(axum::middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({"error": message.into()}))).into_response()
}

/// Loopback only while no token is set; with a token, the token from anywhere.
async fn authorize(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let auth = &state.ingest.auth;
    if auth.required() {
        let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if let Err(e) = auth.check(authorization) {
            let mut r = error(StatusCode::UNAUTHORIZED, format!("{e}; terminal commands take it as --token or GF_PLUGIN_INGEST_TOKEN"));
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return r;
        }
    } else if !peer.ip().is_loopback() && !peer.ip().to_canonical().is_loopback() {
        return error(
            StatusCode::FORBIDDEN,
            "the local API answers this machine only while no ingest token is set: set GF_PLUGIN_INGEST_TOKEN (or the datasource's ingest token) and send it as Authorization: Bearer <token>",
        );
    }
    next.run(request).await
}

async fn query_route(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let request: QueryRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a query request ({{\"query\": {{…}}, \"fromMs\", \"toMs\"}}): {e}")),
    };
    // without Grafana there is no user to ask: the local API's callers read as Viewers
    let settings = match state.query_settings(None, LOCAL_API_ROLE) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let store = match state.store.wait(state.config.store_wait).await {
        Ok(s) => s,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    match query_store(&store, request, settings, state.config.query_limits).await {
        Ok(response) => Json(response).into_response(),
        Err(StoreError::Rejected(m)) => error(StatusCode::BAD_REQUEST, m),
        Err(e @ (StoreError::Invalidated(_) | StoreError::Closed)) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// What `gpx_claudecode status` prints: CheckHealth's message and details, and who answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub health: crate::app::Health,
    pub pid: u32,
    pub version: String,
}

async fn status_route(State(state): State<Arc<AppState>>) -> Response {
    Json(Status { health: state.health().await, pid: std::process::id(), version: env!("CARGO_PKG_VERSION").into() }).into_response()
}

async fn export_route(
    State(state): State<Arc<AppState>>,
    params: Result<Query<ExportParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(params) = match params {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{EXPORT_PATH} takes ?session=ID[&format=otlp-json|jsonl|csv][&signal=logs,metrics,traces]: {e}"),
            )
        }
    };
    let signals = match parse_signals(params.signal.as_deref()) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let store = match state.store.wait(state.config.store_wait).await {
        Ok(s) => s,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let format = params.format;
    let access = match state.content_access(None, LOCAL_API_ROLE) {
        Ok((access, _)) => access,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let result = store
        .read(move |conn| {
            // an export is the session's records as they were sent, content hidden as in queries
            crate::store::masked::apply(conn, access)?;
            crate::export::session(conn, &params.session, format, &signals).map_err(|e| match e {
                crate::export::ExportError::UnknownSession(_) | crate::export::ExportError::NoneOfSignals(..) => {
                    StoreError::Rejected(e.to_string())
                }
                other => StoreError::Failed(other.to_string()),
            })
        })
        .await;
    let content_type = match format {
        ExportFormat::OtlpJson | ExportFormat::Jsonl => "application/x-ndjson",
        ExportFormat::Csv => "text/csv",
    };
    match result {
        Ok((text, counts)) => {
            let counts = serde_json::to_string(&counts).unwrap_or_default();
            let mut r = (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], text).into_response();
            if let Ok(v) = header::HeaderValue::from_str(&counts) {
                r.headers_mut().insert("x-export-counts", v);
            }
            r
        }
        Err(StoreError::Rejected(m)) => error(StatusCode::NOT_FOUND, m),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Notes where this process's HTTP listener is, for terminal commands that find the file held.
pub fn announce(dir: &Path, bound: &str) {
    let text = serde_json::json!({"pid": std::process::id(), "http": bound}).to_string();
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(dir.join(RECEIVER_FILE), text)) {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot note the receiver's address for terminal commands");
    }
}

/// The local API URL of the process that announced itself in `dir`, if any.
pub fn discover(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(RECEIVER_FILE)).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    local_url(json["http"].as_str()?)
}

/// The URL a listen address is reached at from this machine: a wildcard address on loopback.
pub fn local_url(listen: &str) -> Option<String> {
    let address: SocketAddr = listen.parse().ok()?;
    let host = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    Some(format!("http://{host}:{}", address.port()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn listen_addresses_are_reached_on_loopback() {
        assert_eq!(super::local_url("0.0.0.0:4318").as_deref(), Some("http://127.0.0.1:4318"));
        assert_eq!(super::local_url("[::]:4318").as_deref(), Some("http://[::1]:4318"));
        assert_eq!(super::local_url("10.0.0.5:9000").as_deref(), Some("http://10.0.0.5:9000"));
        assert_eq!(super::local_url("localhost:4318"), None);
    }
}
