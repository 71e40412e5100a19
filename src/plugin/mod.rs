//! The Grafana side: Data (QueryData), Diagnostics (CheckHealth) and Resource (CallResource)
//! services of the backend plugin protocol, served on the listener whose address goes out in the
//! go-plugin handshake.
use std::sync::Arc;

use bytes::Bytes;
use grafana_plugin_sdk::backend::{self, ErrIntoHttpResponse};
use grafana_plugin_sdk::pluginv2;
use http::{Response, StatusCode};

use crate::app::AppState;
use crate::ingest::stats::{Origin, Protocol};
use crate::query::{self, QueryContext};
use crate::store::StoreError;
use data::{DataResponse, DataServer, ErrorSource};

pub mod data;
pub mod links;
pub mod stream;

#[derive(Clone, grafana_plugin_sdk::prelude::GrafanaPlugin)]
#[grafana_plugin(plugin_type = "datasource")]
pub struct ClaudeCodePlugin {
    pub state: Arc<AppState>,
}

impl ClaudeCodePlugin {
    /// Takes the datasource's secure `ingestToken`, its `retentionDays` and `retentionMaxSizeGB`
    /// from a Grafana request:
    /// the OTLP listeners and the retention task have no datasource context, so they learn them
    /// here (the token is kept for restarts).
    fn learn_datasource_settings<IS>(&self, settings: Option<&IS>)
    where
        IS: backend::InstanceSettings<serde_json::Value, serde_json::Value>,
    {
        if let Some(s) = settings {
            self.state.learn_datasource_json(s.json_data());
        }
        let token = settings.and_then(|s| s.decrypted_secure_json_data().get("ingestToken").and_then(|v| v.as_str()));
        if let Some(token) = token {
            self.state.ingest.auth.learn(token);
        }
        // retention in days from the datasource's settings, a number or a numeric string
        let days = settings.and_then(|s| {
            let v = s.json_data().get("retentionDays")?;
            v.as_u64().or_else(|| v.as_str().and_then(|t| t.trim().parse().ok()))
        });
        if let Some(days) = days.and_then(|d| u32::try_from(d).ok()) {
            self.state.datasource_retention_days.fetch_max(days, std::sync::atomic::Ordering::Relaxed);
        }
        // size limit in GB (10^9 bytes), fractions allowed
        let gigabytes = settings.and_then(|s| {
            let v = s.json_data().get("retentionMaxSizeGB")?;
            v.as_f64().or_else(|| v.as_str().and_then(|t| t.trim().parse().ok()))
        });
        if let Some(gb) = gigabytes.filter(|g| g.is_finite() && *g > 0.0) {
            self.state.datasource_retention_max_bytes.fetch_max((gb * 1e9) as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// What a datasource's settings add to its queries for a user of `role`
    /// (`AppState::query_settings`).
    pub fn query_settings<IS>(&self, settings: Option<&IS>, role: query::access::Role) -> Result<query::QuerySettings, String>
    where
        IS: backend::InstanceSettings<serde_json::Value, serde_json::Value>,
    {
        let json = settings.map(|s| s.json_data().clone()).unwrap_or_default();
        self.state.query_settings(Some(&json), role)
    }

    /// One query's response: its frames, or the error with its status and source.
    async fn run_query(&self, q: pluginv2::DataQuery, request: Arc<RequestScope>) -> DataResponse {
        let downstream = |m: String| DataResponse::error(StatusCode::BAD_REQUEST, ErrorSource::Downstream, m);
        let json: serde_json::Value = match serde_json::from_slice(&q.json) {
            Ok(json) => json,
            Err(e) => return downstream(format!("invalid query: the query is not JSON: {e}")),
        };
        let parsed = match query::model::parse(&json, &q.query_type) {
            Ok(parsed) => parsed,
            Err(m) => return downstream(m),
        };
        let range = q.time_range.as_ref();
        let time = |ms: Option<i64>| ms.and_then(chrono::DateTime::from_timestamp_millis);
        let (Some(from), Some(to)) = (time(range.map(|r| r.from_epoch_ms)), time(range.map(|r| r.to_epoch_ms))) else {
            return downstream("invalid query: no time range".into());
        };
        // while the store opens (a restart replaying its WAL) queries wait for it
        let store = match self.state.store.wait(self.state.config.store_wait).await {
            Ok(store) => store,
            Err(e) => return DataResponse::error(StatusCode::SERVICE_UNAVAILABLE, ErrorSource::Plugin, e.to_string()),
        };
        let ctx = QueryContext {
            from,
            to,
            interval_ms: q.interval_ms.max(0),
            max_data_points: q.max_data_points,
            limits: self.state.config.query_limits,
        };
        let settings = match &request.settings {
            Ok(s) => s.clone(),
            Err(e) => return downstream(e.clone()),
        };
        let mut frames = match store.read(move |conn| query::run(conn, &parsed, &ctx, &settings).map_err(StoreError::from)).await {
            Ok(frames) => frames,
            Err(e) => {
                let (status, source) = match &e {
                    // the query's own failure: bad options, SQL errors, sandbox refusals
                    StoreError::Rejected(_) => (StatusCode::BAD_REQUEST, ErrorSource::Downstream),
                    StoreError::Invalidated(_) | StoreError::Closed => (StatusCode::SERVICE_UNAVAILABLE, ErrorSource::Plugin),
                    _ => (StatusCode::INTERNAL_SERVER_ERROR, ErrorSource::Plugin),
                };
                return DataResponse::error(status, source, e.to_string());
            }
        };
        if let Some(ds) = &request.datasource {
            links::add(&mut frames, ds);
            // a live tail's channel, under this datasource
            for frame in &mut frames {
                if let Some(path) = frame.meta.channel.take() {
                    frame.meta.channel = Some(format!("ds/{}/{path}", ds.uid));
                }
            }
        }
        match frames.iter().map(|f| f.encode(&q.ref_id)).collect::<Result<Vec<_>, _>>() {
            Ok(bytes) => DataResponse::frames(bytes),
            Err(e) => DataResponse::error(StatusCode::INTERNAL_SERVER_ERROR, ErrorSource::Plugin, format!("building frames: {e}")),
        }
    }
}

/// The role of the Grafana user a request is made for; `None` without a user (Grafana sends one
/// with every dashboard, Explore and alert rule query: the alerting scheduler is an Admin).
pub fn user_role(context: Option<&pluginv2::PluginContext>) -> query::access::Role {
    context.and_then(|c| c.user.as_ref()).map_or(query::access::Role::None, |u| query::access::Role::from_grafana(&u.role))
}

/// What every query of one QueryData request shares: the datasource's query settings and who
/// the datasource is (for data links back to it).
#[derive(Debug)]
pub struct RequestScope {
    pub settings: Result<query::QuerySettings, String>,
    pub datasource: Option<links::Datasource>,
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {}

#[backend::async_trait]
impl backend::DiagnosticsService for ClaudeCodePlugin {
    type CheckHealthError = HealthError;
    type CollectMetricsError = HealthError;

    async fn check_health(
        &self,
        request: backend::CheckHealthRequest<Self>,
    ) -> Result<backend::CheckHealthResponse, Self::CheckHealthError> {
        self.learn_datasource_settings(request.plugin_context.instance_settings.as_ref());
        Ok(health(&self.state).await)
    }

    async fn collect_metrics(
        &self,
        _request: backend::CollectMetricsRequest<Self>,
    ) -> Result<backend::CollectMetricsResponse, Self::CollectMetricsError> {
        Ok(backend::CollectMetricsResponse::new(None))
    }
}

/// Grafana's "Save & test": the process's health (`AppState::health`).
pub async fn health(state: &AppState) -> backend::CheckHealthResponse {
    let h = state.health().await;
    let response = if h.ok { backend::CheckHealthResponse::ok(h.message) } else { backend::CheckHealthResponse::error(h.message) };
    response.with_json_details(h.details)
}

/// Resource errors with their HTTP status (the SDK would answer 500 for everything).
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("not found: {0}")]
    NotFound(String),
}

impl ErrIntoHttpResponse for ResourceError {
    fn into_http_response(self) -> Result<Response<Bytes>, Box<dyn std::error::Error>> {
        let status = match &self {
            ResourceError::NotFound(_) => StatusCode::NOT_FOUND,
        };
        Ok(Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Bytes::from(serde_json::json!({"error": self.to_string()}).to_string()))?)
    }
}

#[backend::async_trait]
impl backend::ResourceService for ClaudeCodePlugin {
    type Error = ResourceError;
    type InitialResponse = Response<Bytes>;
    type Stream = backend::BoxResourceStream<Self::Error>;

    async fn call_resource(&self, r: backend::CallResourceRequest<Self>) -> Result<(Self::InitialResponse, Self::Stream), Self::Error> {
        self.learn_datasource_settings(r.plugin_context.instance_settings.as_ref());
        let request = r.request;
        // The SDK hands the path as "/" + Grafana's resource url.
        let path = format!("/{}", request.uri().path().trim_start_matches('/'));
        let response = match path.as_str() {
            "/v1/logs" | "/v1/metrics" | "/v1/traces" => {
                let origin = Origin { protocol: Protocol::GrafanaResource, peer: None };
                let response =
                    crate::ingest::http::respond(&self.state.ingest, request.method(), &path, request.headers(), request.body(), origin)
                        .await;
                into_bytes_response(response).await
            }
            "/query-types" => json_response(StatusCode::OK, &query::catalog::query_types()),
            "/variables" => {
                let role = r.plugin_context.user.as_ref().map_or(query::access::Role::None, |u| match u.role {
                    backend::Role::Admin => query::access::Role::Admin,
                    backend::Role::Editor => query::access::Role::Editor,
                    backend::Role::Viewer => query::access::Role::Viewer,
                    _ => query::access::Role::None,
                });
                let settings = self.query_settings(r.plugin_context.instance_settings.as_ref(), role);
                self.variable_values(request.uri().query().unwrap_or(""), settings).await
            }
            // where the OTLP listeners are, for the config editor's ready-to-paste Claude Code setup
            "/endpoints" => json_response(StatusCode::OK, &self.state.listeners()),
            _ => return Err(ResourceError::NotFound(format!("no resource at {path}"))),
        };
        Ok((response, Box::pin(futures::stream::empty())))
    }
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<Bytes> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(Bytes::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    resp
}

impl ClaudeCodePlugin {
    /// `GET variables?key=model[&from=ms&to=ms][&limit=n]`: `[{"text", "value"}]`; without a
    /// range, all stored data.
    async fn variable_values(&self, query_string: &str, settings: Result<query::QuerySettings, String>) -> Response<Bytes> {
        let bad = |m: String| json_response(StatusCode::BAD_REQUEST, &serde_json::json!({"error": m}));
        let settings = match settings {
            Ok(s) => s,
            Err(e) => return bad(e),
        };
        let params: std::collections::HashMap<String, String> = form_urlencoded::parse(query_string.as_bytes()).into_owned().collect();
        let Some(key) = params.get("key").filter(|k| !k.is_empty()).cloned() else {
            return bad("variables needs ?key= (session, model, user, tool, event_name or any attribute key)".into());
        };
        let ms = |name: &str, default: chrono::DateTime<chrono::Utc>| -> Result<chrono::DateTime<chrono::Utc>, String> {
            match params.get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .ok_or_else(|| format!("{name}={v:?} is not a time in ms since the epoch")),
            }
        };
        let (from, to) = match (ms("from", chrono::DateTime::UNIX_EPOCH), ms("to", chrono::Utc::now() + chrono::Duration::days(1))) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return bad(e),
        };
        let limit = match params.get("limit").map(|l| l.parse::<u32>()) {
            None => 1000,
            Some(Ok(n)) => n,
            Some(Err(_)) => return bad("limit must be a positive number".into()),
        };
        let store = match self.state.store.wait(self.state.config.store_wait).await {
            Ok(s) => s,
            Err(e) => return json_response(StatusCode::SERVICE_UNAVAILABLE, &serde_json::json!({"error": e.to_string()})),
        };
        let ctx = QueryContext { from, to, interval_ms: 0, max_data_points: 0, limits: self.state.config.query_limits };
        if settings.access == crate::store::masked::Access::Masked {
            if let Err(e) = query::access::check_variable_key(&key, settings.content_role) {
                return json_response(StatusCode::FORBIDDEN, &serde_json::json!({"error": e.to_string()}));
            }
        }
        let q = query::model::VariableQuery { key, limit };
        let result = store
            .read(move |conn| {
                let filters = query::filters::Filters::default();
                crate::store::masked::apply(conn, settings.access)?;
                let r = query::Runner::new(conn, &ctx, &filters, &settings);
                let sql = query::explore::variable_sql(&r, &q).map_err(StoreError::Rejected)?;
                sql.run(conn).map_err(StoreError::from)
            })
            .await;
        match result {
            Ok(t) => {
                let values: Vec<serde_json::Value> = (0..t.rows())
                    .filter_map(|i| t.column("value").and_then(|c| c.text(i)))
                    .map(|v| serde_json::json!({"text": v, "value": v}))
                    .collect();
                json_response(StatusCode::OK, &values)
            }
            Err(StoreError::Rejected(m)) => bad(m),
            Err(e) => json_response(StatusCode::INTERNAL_SERVER_ERROR, &serde_json::json!({"error": e.to_string()})),
        }
    }
}

async fn into_bytes_response(resp: axum::response::Response) -> Response<Bytes> {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    Response::from_parts(parts, bytes)
}

/// Serves the plugin's gRPC services on the handshake listener until `shutdown` resolves.
/// Besides the SDK's services this registers go-plugin's health service name `plugin`, which
/// go-plugin clients ping (`GRPCClient.Ping`), next to the per-service names.
pub async fn serve(
    plugin: ClaudeCodePlugin,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let limit = plugin.state.config.ingest.max_body_bytes;
    let (mut reporter, health_service) = tonic_health::server::health_reporter();
    reporter.set_service_status("plugin", tonic_health::ServingStatus::Serving).await;
    reporter.set_serving::<DataServer>().await;
    reporter.set_serving::<pluginv2::diagnostics_server::DiagnosticsServer<ClaudeCodePlugin>>().await;
    reporter.set_serving::<pluginv2::resource_server::ResourceServer<ClaudeCodePlugin>>().await;
    reporter.set_serving::<pluginv2::stream_server::StreamServer<stream::LiveTails>>().await;
    let tails = stream::LiveTails::new(plugin.state.clone(), shutdown.clone());
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(DataServer::new(plugin.clone(), limit))
        .add_service(pluginv2::diagnostics_server::DiagnosticsServer::new(plugin.clone()))
        .add_service(pluginv2::resource_server::ResourceServer::new(plugin).max_decoding_message_size(limit))
        .add_service(pluginv2::stream_server::StreamServer::new(tails))
        .serve_with_incoming_shutdown(crate::ingest::grpc::nodelay_incoming(listener)?, async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(json: serde_json::Value) -> pluginv2::DataQuery {
        pluginv2::DataQuery {
            ref_id: "A".into(),
            json: serde_json::to_vec(&json).unwrap(),
            time_range: Some(pluginv2::TimeRange { from_epoch_ms: 0, to_epoch_ms: 1_000 }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn errors_carry_their_status_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::standalone(Some(dir.path().to_path_buf()), None, None);
        config.store_wait = std::time::Duration::from_millis(50);
        let state = AppState::new(config);
        let plugin = ClaudeCodePlugin { state: state.clone() };
        // the query's fault, whatever the store's state
        let r = plugin
            .run_query(
                query(serde_json::json!({"queryType": "nope"})),
                Arc::new(RequestScope { settings: Ok(Default::default()), datasource: None }),
            )
            .await;
        assert_eq!((r.status, r.error_source.as_str()), (400, "downstream"), "{}", r.error);
        let r = plugin
            .run_query(
                pluginv2::DataQuery { time_range: None, ..query(serde_json::json!({"queryType": "event_counts"})) },
                Arc::new(RequestScope { settings: Ok(Default::default()), datasource: None }),
            )
            .await;
        assert_eq!((r.status, r.error_source.as_str()), (400, "downstream"), "{}", r.error);
        // the plugin's: its store did not open within the wait
        let r = plugin
            .run_query(
                query(serde_json::json!({"queryType": "event_counts"})),
                Arc::new(RequestScope { settings: Ok(Default::default()), datasource: None }),
            )
            .await;
        assert_eq!((r.status, r.error_source.as_str(), r.frames.len()), (503, "plugin", 0), "{}", r.error);
        assert!(r.error.contains("still opening"), "{}", r.error);
        // once open: frames, no error, no source
        state.open_store().await.unwrap();
        let r = plugin
            .run_query(
                query(serde_json::json!({"queryType": "event_counts"})),
                Arc::new(RequestScope { settings: Ok(Default::default()), datasource: None }),
            )
            .await;
        assert_eq!((r.status, r.error.as_str(), r.error_source.as_str(), r.frames.len()), (200, "", "", 1));
    }
}
