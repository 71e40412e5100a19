//! OTLP/gRPC receiver: the Logs, Metrics and Trace `Export` services (gzip accepted).
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{MetricsService, MetricsServiceServer};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::decode::ExportRequest;
use super::{export, response};
use crate::app::AppState;

#[derive(Clone)]
pub struct Receiver {
    state: Arc<AppState>,
}

impl Receiver {
    async fn export(&self, request: ExportRequest) -> Result<super::ExportOutcome, Status> {
        export(&self.state, request).await.map_err(|e| {
            tracing::warn!(error = %e, "gRPC export refused");
            e.grpc_status()
        })
    }
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(&self, request: Request<ExportLogsServiceRequest>) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let outcome = Receiver::export(self, ExportRequest::Logs(request.into_inner())).await?;
        Ok(Response::new(response::logs(&outcome)))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(&self, request: Request<ExportMetricsServiceRequest>) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let outcome = Receiver::export(self, ExportRequest::Metrics(request.into_inner())).await?;
        Ok(Response::new(response::metrics(&outcome)))
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(&self, request: Request<ExportTraceServiceRequest>) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let outcome = Receiver::export(self, ExportRequest::Traces(request.into_inner())).await?;
        Ok(Response::new(response::traces(&outcome)))
    }
}

pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let limit = state.config.max_body_bytes;
    let auth_state = state.clone();
    // runs before the message is read: unauthenticated exports cost nothing
    #[allow(clippy::result_large_err)] // tonic's interceptor signature
    let auth = move |request: Request<()>| {
        let authorization = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        match auth_state.auth.check(authorization) {
            Ok(()) => Ok(request),
            Err(message) => Err(Status::unauthenticated(message)),
        }
    };
    use tonic::service::interceptor::InterceptedService;
    let receiver = Receiver { state };
    let logs = LogsServiceServer::new(receiver.clone()).accept_compressed(CompressionEncoding::Gzip).max_decoding_message_size(limit);
    let metrics = MetricsServiceServer::new(receiver.clone()).accept_compressed(CompressionEncoding::Gzip).max_decoding_message_size(limit);
    let traces = TraceServiceServer::new(receiver).accept_compressed(CompressionEncoding::Gzip).max_decoding_message_size(limit);
    tonic::transport::Server::builder()
        .add_service(InterceptedService::new(logs, auth.clone()))
        .add_service(InterceptedService::new(metrics, auth.clone()))
        .add_service(InterceptedService::new(traces, auth))
        .serve_with_incoming_shutdown(crate::app::nodelay_incoming(listener)?, async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
        .map_err(|e| e.to_string())
}
