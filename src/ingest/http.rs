//! OTLP/HTTP receiver: `POST /v1/{logs,metrics,traces}` (and the VictoriaMetrics/VictoriaLogs-style
//! paths existing Claude Code configs use), protobuf or JSON, optionally gzip, chunked or not.
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use prost::Message;

use super::decode::{Encoding, Signal};
use super::stats::{Origin, Protocol, RefusalReason};
use super::{Ingest, IngestError};

/// The signal a request path is for: OTLP's own paths plus the ones of VictoriaMetrics
/// (`/opentelemetry/v1/...`) and VictoriaLogs (`/insert/opentelemetry/v1/...`).
pub fn signal_for_path(path: &str) -> Option<Signal> {
    let path = path.trim_end_matches('/');
    let rest = path.strip_prefix("/insert/opentelemetry").or_else(|| path.strip_prefix("/opentelemetry")).unwrap_or(path);
    match rest {
        "/v1/logs" => Some(Signal::Logs),
        "/v1/metrics" => Some(Signal::Metrics),
        "/v1/traces" => Some(Signal::Traces),
        _ => None,
    }
}

/// `google.rpc.Status`, the body of OTLP error responses.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// An error response in the request's encoding (JSON when it is unknown).
pub fn error_response(status: StatusCode, grpc_code: tonic::Code, encoding: Option<Encoding>, message: String) -> Response {
    let rpc = RpcStatus { code: grpc_code as i32, message };
    let (content_type, body) = match encoding {
        Some(Encoding::Protobuf) => (Encoding::Protobuf.content_type(), rpc.encode_to_vec()),
        _ => (Encoding::Json.content_type(), serde_json::json!({"code": rpc.code, "message": rpc.message}).to_string().into_bytes()),
    };
    let mut resp = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    resp
}

impl IngestError {
    pub fn into_response(self, encoding: Option<Encoding>) -> Response {
        let code = self.grpc_status().code();
        let mut resp = error_response(self.http_status(), code, encoding, self.to_string());
        match &self {
            IngestError::Unauthorized(_) => {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            }
            IngestError::Request(RequestError::Method { .. }) => {
                resp.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            }
            _ => {}
        }
        resp
    }
}

/// An HTTP request that is not an OTLP export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("no OTLP endpoint at {0}: use /v1/logs, /v1/metrics or /v1/traces")]
    NotFound(String),
    #[error("{method} is not allowed on {path}: use POST")]
    Method { method: String, path: String },
    #[error("unsupported Content-Type {0:?}: use application/x-protobuf or application/json")]
    ContentType(String),
    #[error("unsupported Content-Encoding {0:?}: use gzip or none")]
    ContentEncoding(String),
}

impl RequestError {
    pub fn http_status(&self) -> StatusCode {
        match self {
            RequestError::NotFound(_) => StatusCode::NOT_FOUND,
            RequestError::Method { .. } => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::ContentType(_) | RequestError::ContentEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            RequestError::NotFound(_) => tonic::Code::NotFound,
            RequestError::Method { .. } => tonic::Code::Unimplemented,
            RequestError::ContentType(_) | RequestError::ContentEncoding(_) => tonic::Code::InvalidArgument,
        }
    }
}

pub fn router(ingest: Arc<Ingest>) -> Router {
    let limit = ingest.settings.max_body_bytes;
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(limit))
        // outermost: an unauthenticated request is refused before its body is read
        .layer(axum::middleware::from_fn_with_state(ingest.clone(), require_token))
        .with_state(ingest)
}

fn peer(request: &axum::extract::Request) -> Option<SocketAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// 401 with `WWW-Authenticate: Bearer` unless the request carries a valid ingest token.
async fn require_token(State(ingest): State<Arc<Ingest>>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let origin = Origin { protocol: Protocol::Http, peer: peer(&request) };
    match ingest.authorize(authorization, signal_for_path(request.uri().path()), &origin) {
        Ok(()) => next.run(request).await,
        Err(e) => {
            let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            e.into_response(Encoding::from_content_type(content_type))
        }
    }
}

/// What an HTTP request asks for.
pub struct ParsedRequest {
    pub signal: Signal,
    pub encoding: Encoding,
    pub gzip: bool,
}

/// Checks path, method, content type and encoding; shared with the plugin's resource route.
/// The error carries the encoding to answer in, where the request names one.
pub fn parse_request(method: &Method, path: &str, headers: &HeaderMap) -> Result<ParsedRequest, (RequestError, Option<Encoding>)> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let encoding = Encoding::from_content_type(content_type);
    let Some(signal) = signal_for_path(path) else {
        return Err((RequestError::NotFound(path.to_string()), encoding));
    };
    if method != Method::POST {
        return Err((RequestError::Method { method: method.to_string(), path: path.to_string() }, encoding));
    }
    let Some(encoding) = encoding else {
        return Err((RequestError::ContentType(content_type.to_string()), None));
    };
    let gzip = match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_ascii_lowercase()) {
        None => false,
        Some(e) if e.is_empty() || e == "identity" => false,
        Some(e) if e == "gzip" || e == "x-gzip" => true,
        Some(e) => return Err((RequestError::ContentEncoding(e), Some(encoding))),
    };
    Ok(ParsedRequest { signal, encoding, gzip })
}

/// Ingests one HTTP request and builds the OTLP response (after the commit); shared with the
/// plugin's resource route. Refusals are counted and logged.
pub async fn respond(ingest: &Arc<Ingest>, method: &Method, path: &str, headers: &HeaderMap, body: &[u8], origin: Origin) -> Response {
    let req = match parse_request(method, path, headers) {
        Ok(req) => req,
        Err((e, encoding)) => return ingest.refuse(e.into(), signal_for_path(path), &origin).into_response(encoding),
    };
    match ingest.export_body(req.signal, req.encoding, body, req.gzip, origin).await {
        Ok(outcome) => {
            let body = super::response::body(req.signal, req.encoding, &outcome);
            (StatusCode::OK, [(header::CONTENT_TYPE, req.encoding.content_type())], body).into_response()
        }
        Err(e) => e.into_response(Some(req.encoding)),
    }
}

/// Where `gpx_claudecode statusline` sends Claude Code's status to a running receiver.
pub const STATUSLINE_PATH: &str = "/v1/statusline";

/// Where `gpx_claudecode import` sends transcript calls to a running receiver.
pub const TRANSCRIPTS_PATH: &str = "/v1/transcripts";

/// `POST /v1/transcripts`: a JSON `ImportRequest` (gzip allowed), answered with the
/// `ImportOutcome` once committed.
pub async fn import(ingest: &Arc<Ingest>, method: &Method, headers: &HeaderMap, body: &[u8]) -> Response {
    let json = |status: StatusCode, value: serde_json::Value| {
        (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
    };
    let json_error = |status: StatusCode, message: String| json(status, serde_json::json!({"error": message}));
    if method != Method::POST {
        return json_error(StatusCode::METHOD_NOT_ALLOWED, format!("{TRANSCRIPTS_PATH} takes POST"));
    }
    let limit = ingest.settings.max_body_bytes;
    let gzip = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
    let inflated;
    let body = if gzip {
        match super::decode::gunzip(body, limit) {
            Ok(b) => {
                inflated = b;
                &inflated[..]
            }
            Err(e) => return json_error(StatusCode::BAD_REQUEST, e.to_string()),
        }
    } else {
        body
    };
    let request: super::transcript::ImportRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("not an import request (JSON with \"calls\"): {e}")),
    };
    match ingest.import(request).await {
        Ok(outcome) => json(StatusCode::OK, serde_json::to_value(outcome).unwrap_or_default()),
        Err(e) => json_error(e.http_status(), e.to_string()),
    }
}

async fn handle(
    State(ingest): State<Arc<Ingest>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path().trim_end_matches('/') == TRANSCRIPTS_PATH {
        return import(&ingest, &method, &headers, &body).await;
    }
    if uri.path().trim_end_matches('/') == STATUSLINE_PATH && method == Method::POST {
        let json = |status: StatusCode, value: serde_json::Value| {
            (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
        };
        let input: crate::statusline::StatusInput = match serde_json::from_slice(&body) {
            Ok(i) => i,
            Err(e) => return json(StatusCode::BAD_REQUEST, serde_json::json!({"error": format!("not a Claude Code status (JSON): {e}")})),
        };
        return match crate::statusline::record(&ingest, &input, chrono::Utc::now()).await {
            Ok(status) => json(StatusCode::OK, serde_json::to_value(status).unwrap_or_default()),
            Err(e) => json(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"error": e})),
        };
    }
    respond(&ingest, &method, uri.path(), &headers, &body, Origin { protocol: Protocol::Http, peer: Some(peer) }).await
}

/// Serves OTLP/HTTP, and the routes of `beside` (the local API, with its own authorization),
/// on `listener` until `shutdown` resolves.
pub async fn serve(
    ingest: Arc<Ingest>,
    beside: Router,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<super::tls::Tls>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    if let Some(tls) = tls {
        return serve_tls(ingest, beside, listener, tls, shutdown).await;
    }
    // Without TCP_NODELAY small responses wait for the peer's delayed ACK (~40 ms each).
    axum::serve(listener, beside.merge(router(ingest)).into_make_service_with_connect_info::<SocketAddr>())
        .tcp_nodelay(true)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
        .map_err(|e| e.to_string())
}

/// `serve` over TLS: axum's server takes plain TCP only, so each connection is handed to hyper
/// here, with its peer address for the handlers and a graceful end on shutdown.
async fn serve_tls(
    ingest: Arc<Ingest>,
    beside: Router,
    listener: tokio::net::TcpListener,
    tls: Arc<super::tls::Tls>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    use futures::StreamExt;
    let app = beside.merge(router(ingest.clone()));
    let refused = move |peer, reason: String| {
        let origin = Origin { protocol: Protocol::Http, peer: Some(peer) };
        ingest.stats.refused(RefusalReason::Tls, None, &origin, &reason);
    };
    let mut connections = std::pin::pin!(super::tls::incoming(listener, tls, refused));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    loop {
        let conn = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            conn = connections.next() => conn,
        };
        let Some(Ok(conn)) = conn else { break };
        let Some(peer) = conn.peer() else { continue };
        let service = app.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        let service = hyper_util::service::TowerToHyperService::new(service);
        let connection = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(conn), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "OTLP/HTTP connection ended");
            }
        });
    }
    // requests under way finish; idle connections close
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(signal_for_path("/v1/logs"), Some(Signal::Logs));
        assert_eq!(signal_for_path("/v1/metrics/"), Some(Signal::Metrics));
        assert_eq!(signal_for_path("/opentelemetry/v1/metrics"), Some(Signal::Metrics));
        assert_eq!(signal_for_path("/insert/opentelemetry/v1/logs"), Some(Signal::Logs));
        assert_eq!(signal_for_path("/v1/trace"), None);
        assert_eq!(signal_for_path("/"), None);
    }
}
