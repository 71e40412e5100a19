//! The pluginv2 `Data` service (QueryData), served here rather than by the SDK: its response
//! type stops at `status` and its frames are its own. Responses carry our Arrow frames and, from
//! Grafana's current `backend.proto`, `errorSource` (tag 5), which tells Grafana and the user
//! whether the query or the plugin failed; Grafanas that predate it skip the unknown field.
use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::StreamExt;
use grafana_plugin_sdk::pluginv2;
use http::StatusCode;
use tonic::body::BoxBody;
use tonic::codec::ProstCodec;
use tonic::codegen::{empty_body, Body, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};

use super::ClaudeCodePlugin;

/// `pluginv2.QueryDataResponse` with Grafana's current `DataResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryDataResponse {
    /// By refId.
    #[prost(map = "string, message", tag = "1")]
    pub responses: HashMap<String, DataResponse>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DataResponse {
    /// Arrow IPC files, one per frame.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub frames: Vec<Vec<u8>>,
    #[prost(string, tag = "2")]
    pub error: String,
    #[prost(bytes = "vec", tag = "3")]
    pub json_meta: Vec<u8>,
    /// An HTTP status; 0 = 200 without an error.
    #[prost(int32, tag = "4")]
    pub status: i32,
    /// `plugin` or `downstream` (sdk-go `backend.ErrorSource`); empty when there is no error.
    #[prost(string, tag = "5")]
    pub error_source: String,
}

/// Whom Grafana should blame for a failed query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The plugin: its store, its SQL, its frames.
    Plugin,
    /// The query: bad options or the user's SQL.
    Downstream,
}

impl ErrorSource {
    fn as_str(self) -> &'static str {
        match self {
            ErrorSource::Plugin => "plugin",
            ErrorSource::Downstream => "downstream",
        }
    }
}

impl DataResponse {
    pub fn frames(frames: Vec<Vec<u8>>) -> DataResponse {
        DataResponse { frames, status: StatusCode::OK.as_u16().into(), ..DataResponse::default() }
    }

    pub fn error(status: StatusCode, source: ErrorSource, message: String) -> DataResponse {
        DataResponse { error: message, status: status.as_u16().into(), error_source: source.as_str().into(), ..DataResponse::default() }
    }
}

/// Queries of one request run this many at a time.
const CONCURRENT_QUERIES: usize = 4;

impl ClaudeCodePlugin {
    async fn query_data(&self, request: pluginv2::QueryDataRequest) -> QueryDataResponse {
        let role = super::user_role(request.plugin_context.as_ref());
        let context = request.plugin_context.and_then(|mut context| {
            // the SDK refuses roles it does not know (Grafana's "None"); the role is read above
            context.user = None;
            grafana_plugin_sdk::backend::PluginContext::<DatasourceSettings, serde_json::Value, serde_json::Value>::try_from(context)
                .map_err(|e| tracing::warn!(error = %e, "QueryData: unreadable plugin context"))
                .ok()
        });
        let instance = context.as_ref().and_then(|c| c.instance_settings.as_ref());
        self.learn_datasource_settings(instance);
        let scope = Arc::new(super::RequestScope {
            settings: self.query_settings(instance, role),
            datasource: instance
                .filter(|i| !i.uid.is_empty())
                .map(|i| super::links::Datasource { uid: i.uid.clone(), name: i.name.clone() }),
        });
        let responses = futures::stream::iter(request.queries)
            .map(|q| {
                let (this, scope) = (self.clone(), scope.clone());
                async move { (q.ref_id.clone(), this.run_query(q, scope).await) }
            })
            .buffered(CONCURRENT_QUERIES)
            .collect()
            .await;
        QueryDataResponse { responses }
    }
}

type DatasourceSettings = grafana_plugin_sdk::backend::DataSourceInstanceSettings<serde_json::Value, serde_json::Value>;

/// The tonic service for `pluginv2.Data`, in the shape tonic generates for a server.
#[derive(Clone)]
pub struct DataServer {
    plugin: Arc<ClaudeCodePlugin>,
    max_decoding_message_size: usize,
}

impl DataServer {
    pub fn new(plugin: ClaudeCodePlugin, max_decoding_message_size: usize) -> DataServer {
        DataServer { plugin: Arc::new(plugin), max_decoding_message_size }
    }
}

impl NamedService for DataServer {
    const NAME: &'static str = "pluginv2.Data";
}

struct QueryDataCall(Arc<ClaudeCodePlugin>);

impl UnaryService<pluginv2::QueryDataRequest> for QueryDataCall {
    type Response = QueryDataResponse;
    type Future = BoxFuture<tonic::Response<QueryDataResponse>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<pluginv2::QueryDataRequest>) -> Self::Future {
        let plugin = self.0.clone();
        Box::pin(async move { Ok(tonic::Response::new(plugin.query_data(request.into_inner()).await)) })
    }
}

impl<B> Service<http::Request<B>> for DataServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<BoxBody>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let plugin = self.plugin.clone();
        let limit = self.max_decoding_message_size;
        match request.uri().path() {
            "/pluginv2.Data/QueryData" => Box::pin(async move {
                let codec = ProstCodec::<QueryDataResponse, pluginv2::QueryDataRequest>::default();
                let mut grpc = Grpc::new(codec).apply_max_message_size_config(Some(limit), None);
                Ok(grpc.unary(QueryDataCall(plugin), request).await)
            }),
            _ => Box::pin(async move {
                let mut response = http::Response::new(empty_body());
                response.headers_mut().insert("grpc-status", http::HeaderValue::from(tonic::Code::Unimplemented as i32));
                response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
                Ok(response)
            }),
        }
    }
}

/// Connects to a plugin's gRPC address (`host:port` from the handshake) as Grafana's grpc-go
/// client does: HTTP/2 flow-control windows that grow with the measured bandwidth-delay product
/// (grpc-go's BDP estimation) instead of staying at 64 KiB, which throttles large frames.
pub async fn connect(address: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_shared(format!("http://{address}"))?.http2_adaptive_window(true).tcp_nodelay(true).connect().await
}

/// Calls QueryData as Grafana does and decodes the response with `errorSource`: the client the
/// tests and the benchmark use.
pub async fn call(
    channel: tonic::transport::Channel,
    request: pluginv2::QueryDataRequest,
    max_decoding_message_size: usize,
) -> Result<QueryDataResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(max_decoding_message_size);
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(format!("plugin not ready: {e}")))?;
    let codec = ProstCodec::<pluginv2::QueryDataRequest, QueryDataResponse>::default();
    let path = http::uri::PathAndQuery::from_static("/pluginv2.Data/QueryData");
    Ok(grpc.unary(tonic::Request::new(request), path, codec).await?.into_inner())
}
