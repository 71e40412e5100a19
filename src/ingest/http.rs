//! OTLP/HTTP receiver: `POST /v1/{logs,metrics,traces}` (and the VictoriaMetrics/VictoriaLogs-style
//! paths existing Claude Code configs use), protobuf or JSON, optionally gzip, chunked or not.
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use prost::Message;

use super::decode::{Encoding, Signal};
use super::{export_body, IngestError};
use crate::app::AppState;

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
    pub fn into_response(self, encoding: Encoding) -> Response {
        let code = self.grpc_status().code();
        error_response(self.http_status(), code, Some(encoding), self.to_string())
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(limit))
        // outermost: an unauthenticated request is refused before its body is read
        .layer(axum::middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// 401 with `WWW-Authenticate: Bearer` unless the request carries a valid ingest token.
async fn require_token(State(state): State<Arc<AppState>>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match state.auth.check(authorization) {
        Ok(()) => next.run(request).await,
        Err(message) => {
            let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let mut resp = error_response(
                StatusCode::UNAUTHORIZED,
                tonic::Code::Unauthenticated,
                Encoding::from_content_type(content_type),
                message.into(),
            );
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            resp
        }
    }
}

/// What an HTTP request asks for, or the error response that refuses it.
pub struct ParsedRequest {
    pub signal: Signal,
    pub encoding: Encoding,
    pub gzip: bool,
}

/// Checks path, method, content type and encoding; shared with the plugin's resource route.
#[allow(clippy::result_large_err)] // the error is the response itself, built once per refused request
pub fn parse_request(method: &Method, path: &str, headers: &HeaderMap) -> Result<ParsedRequest, Response> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let encoding = Encoding::from_content_type(content_type);
    let Some(signal) = signal_for_path(path) else {
        return Err(error_response(
            StatusCode::NOT_FOUND,
            tonic::Code::NotFound,
            encoding,
            format!("no OTLP endpoint at {path}: use /v1/logs, /v1/metrics or /v1/traces"),
        ));
    };
    if method != Method::POST {
        let mut r = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            tonic::Code::Unimplemented,
            encoding,
            format!("{method} is not allowed on {path}: use POST"),
        );
        r.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return Err(r);
    }
    let Some(encoding) = encoding else {
        return Err(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tonic::Code::InvalidArgument,
            None,
            format!("unsupported Content-Type {content_type:?}: use application/x-protobuf or application/json"),
        ));
    };
    let gzip = match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_ascii_lowercase()) {
        None => false,
        Some(e) if e.is_empty() || e == "identity" => false,
        Some(e) if e == "gzip" || e == "x-gzip" => true,
        Some(e) => {
            return Err(error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                tonic::Code::InvalidArgument,
                Some(encoding),
                format!("unsupported Content-Encoding {e:?}: use gzip or none"),
            ));
        }
    };
    Ok(ParsedRequest { signal, encoding, gzip })
}

/// Ingests one parsed request and builds the OTLP response (after the commit).
pub async fn respond(state: &AppState, req: ParsedRequest, body: &[u8]) -> Response {
    match export_body(state, req.signal, req.encoding, body, req.gzip).await {
        Ok(outcome) => {
            let body = super::response::body(req.signal, req.encoding, &outcome);
            (StatusCode::OK, [(header::CONTENT_TYPE, req.encoding.content_type())], body).into_response()
        }
        Err(e) => {
            tracing::warn!(signal = req.signal.name(), error = %e, "export refused");
            e.into_response(req.encoding)
        }
    }
}

async fn handle(State(state): State<Arc<AppState>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    match parse_request(&method, uri.path(), &headers) {
        Ok(req) => respond(&state, req, &body).await,
        Err(resp) => resp,
    }
}

pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    // Without TCP_NODELAY small responses wait for the peer's delayed ACK (~40 ms each).
    axum::serve(listener, router(state))
        .tcp_nodelay(true)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
        .map_err(|e| e.to_string())
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
