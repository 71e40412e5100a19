//! OTLP/gRPC receiver: the Logs, Metrics and Trace `Export` services (gzip accepted), served
//! here rather than through the generated servers for what those cannot do: the token is
//! checked before the message is read, an undecodable message is INVALID_ARGUMENT (the
//! generated codec says INTERNAL), and every refusal is counted with the peer's address.
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use tonic::body::BoxBody;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::server::TcpConnectInfo;
use tonic::Status;

use super::decode::{ExportRequest, Signal};
use super::stats::{Origin, Protocol};
use super::{response, ExportOutcome, Ingest};

/// One OTLP signal's service: its name, messages and how they map to ours.
pub trait ExportKind: Send + Sync + 'static {
    const NAME: &'static str;
    const SIGNAL: Signal;
    type Request: prost::Message + Default + Send + 'static;
    type Response: prost::Message + Send + 'static;
    fn request(message: Self::Request) -> ExportRequest;
    fn response(outcome: &ExportOutcome) -> Self::Response;
}

pub struct Logs;
pub struct Metrics;
pub struct Traces;

impl ExportKind for Logs {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const SIGNAL: Signal = Signal::Logs;
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;
    fn request(message: Self::Request) -> ExportRequest {
        ExportRequest::Logs(message)
    }
    fn response(outcome: &ExportOutcome) -> Self::Response {
        response::logs(outcome)
    }
}

impl ExportKind for Metrics {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const SIGNAL: Signal = Signal::Metrics;
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;
    fn request(message: Self::Request) -> ExportRequest {
        ExportRequest::Metrics(message)
    }
    fn response(outcome: &ExportOutcome) -> Self::Response {
        response::metrics(outcome)
    }
}

impl ExportKind for Traces {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const SIGNAL: Signal = Signal::Traces;
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;
    fn request(message: Self::Request) -> ExportRequest {
        ExportRequest::Traces(message)
    }
    fn response(outcome: &ExportOutcome) -> Self::Response {
        response::traces(outcome)
    }
}

/// Protobuf messages, with undecodable ones refused as INVALID_ARGUMENT.
struct OtlpCodec<K>(PhantomData<K>);

impl<K: ExportKind> Codec for OtlpCodec<K> {
    type Encode = K::Response;
    type Decode = K::Request;
    type Encoder = OtlpCodec<K>;
    type Decoder = OtlpCodec<K>;
    fn encoder(&mut self) -> Self::Encoder {
        OtlpCodec(PhantomData)
    }
    fn decoder(&mut self) -> Self::Decoder {
        OtlpCodec(PhantomData)
    }
}

impl<K: ExportKind> Encoder for OtlpCodec<K> {
    type Item = K::Response;
    type Error = Status;
    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        prost::Message::encode(&item, dst).map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

impl<K: ExportKind> Decoder for OtlpCodec<K> {
    type Item = K::Request;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        <K::Request as prost::Message>::decode(src)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("invalid protobuf {} export request: {e}", K::SIGNAL.name())))
    }
}

/// The `Export` method of one signal's service.
pub struct ExportService<K> {
    ingest: Arc<Ingest>,
    kind: PhantomData<K>,
}

impl<K> Clone for ExportService<K> {
    fn clone(&self) -> Self {
        ExportService { ingest: self.ingest.clone(), kind: PhantomData }
    }
}

impl<K: ExportKind> NamedService for ExportService<K> {
    const NAME: &'static str = K::NAME;
}

struct ExportCall<K> {
    ingest: Arc<Ingest>,
    peer: Option<SocketAddr>,
    /// Set once the message decoded and reached `Ingest::export` (which counts its own refusals).
    reached: Arc<std::sync::atomic::AtomicBool>,
    kind: PhantomData<K>,
}

impl<K: ExportKind> UnaryService<K::Request> for ExportCall<K> {
    type Response = K::Response;
    type Future = BoxFuture<tonic::Response<K::Response>, Status>;

    fn call(&mut self, request: tonic::Request<K::Request>) -> Self::Future {
        self.reached.store(true, std::sync::atomic::Ordering::Relaxed);
        let ingest = self.ingest.clone();
        let origin = Origin { protocol: Protocol::Grpc, peer: self.peer };
        Box::pin(async move {
            match ingest.export(K::request(request.into_inner()), origin).await {
                Ok(outcome) => Ok(tonic::Response::new(K::response(&outcome))),
                Err(e) => Err(e.grpc_status()),
            }
        })
    }
}

impl<K, B> Service<http::Request<B>> for ExportService<K>
where
    K: ExportKind,
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
        let ingest = self.ingest.clone();
        let peer = request.extensions().get::<TcpConnectInfo>().and_then(|c| c.remote_addr());
        Box::pin(async move {
            if request.uri().path() != format!("/{}/Export", K::NAME) {
                return Ok(
                    Status::unimplemented(format!("no method {} here: OTLP services have Export only", request.uri().path())).into_http()
                );
            }
            // before the message is read: unauthenticated exports cost nothing
            let authorization = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            let origin = Origin { protocol: Protocol::Grpc, peer };
            if let Err(e) = ingest.authorize(authorization, Some(K::SIGNAL), &origin) {
                return Ok(e.grpc_status().into_http());
            }
            let limit = ingest.settings.max_body_bytes;
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            let mut grpc = Grpc::new(OtlpCodec::<K>(PhantomData))
                .apply_compression_config(accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(limit), None);
            let reached = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let call = ExportCall::<K> { ingest: ingest.clone(), peer, reached: reached.clone(), kind: PhantomData };
            let response = grpc.unary(call, request).await;
            // refused before our code ran (an undecodable, oversized or badly compressed
            // message): counted here
            if !reached.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(status) = Status::from_header_map(response.headers()).filter(|s| s.code() != tonic::Code::Ok) {
                    let e = match status.code() {
                        tonic::Code::OutOfRange => super::IngestError::BodyTooLarge { limit },
                        _ => super::IngestError::Decode(super::decode::DecodeError::Grpc(status.message().to_string())),
                    };
                    ingest.refuse(e, Some(K::SIGNAL), &origin);
                }
            }
            Ok(response)
        })
    }
}

pub async fn serve(
    ingest: Arc<Ingest>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<super::tls::Tls>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let service = |ingest: &Arc<Ingest>| ingest.clone();
    let router = tonic::transport::Server::builder()
        .add_service(ExportService::<Logs> { ingest: service(&ingest), kind: PhantomData })
        .add_service(ExportService::<Metrics> { ingest: service(&ingest), kind: PhantomData })
        .add_service(ExportService::<Traces> { ingest: service(&ingest), kind: PhantomData });
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    let served = match tls {
        Some(tls) => {
            let refused = move |peer, reason: String| {
                let origin = Origin { protocol: Protocol::Grpc, peer: Some(peer) };
                ingest.stats.refused(super::stats::RefusalReason::Tls, None, &origin, &reason);
            };
            router.serve_with_incoming_shutdown(super::tls::incoming(listener, tls, refused), stop).await
        }
        None => router.serve_with_incoming_shutdown(nodelay_incoming(listener)?, stop).await,
    };
    served.map_err(|e| e.to_string())
}

/// Accepted connections with TCP_NODELAY: without it every small gRPC response waits for the
/// peer's delayed ACK (~40 ms per query or export on Linux).
pub fn nodelay_incoming(listener: tokio::net::TcpListener) -> Result<tonic::transport::server::TcpIncoming, String> {
    tonic::transport::server::TcpIncoming::from_listener(listener, true, None).map_err(|e| format!("listener: {e}"))
}
