//! Grafana Live: the plugin's Stream service. A `live` query answers with an empty log-lines
//! frame whose `meta.channel` is `ds/<uid>/tail` (every event) or `ds/<uid>/tail/<session>`;
//! the browser subscribes, Grafana calls SubscribeStream and, for the first subscriber of a
//! channel, RunStream, and fans its packets out. RunStream sends the events of each commit from
//! then on as log lines (the frame's JSON, schema with the first packet), holds a bounded
//! backlog per stream (`store::live::BACKLOG_COMMITS`), and ends when Grafana drops the call or
//! the plugin shuts down. With no stream running nothing is built or kept.
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use grafana_plugin_sdk::pluginv2::{self, publish_stream_response, subscribe_stream_response};
use tokio::sync::{broadcast, watch};

use crate::app::AppState;
use crate::query::logs;
use crate::store::live::LiveBatch;

/// Which events a channel path follows: `None` for all, else one session's.
fn session_of(path: &str) -> Option<Option<String>> {
    if path == "tail" {
        return Some(None);
    }
    let session = path.strip_prefix("tail/")?;
    // the same rule `live` queries make their paths with
    logs::tail_path(Some(session)).ok().filter(|p| p == path).map(|_| Some(session.to_string()))
}

#[derive(Clone)]
pub struct LiveTails {
    state: Arc<AppState>,
    shutdown: watch::Receiver<bool>,
}

impl LiveTails {
    pub fn new(state: Arc<AppState>, shutdown: watch::Receiver<bool>) -> LiveTails {
        LiveTails { state, shutdown }
    }
}

type Packets = Pin<Box<dyn Stream<Item = Result<pluginv2::StreamPacket, tonic::Status>> + Send>>;

/// A stream's state between packets.
struct Tail {
    events: broadcast::Receiver<LiveBatch>,
    session: Option<String>,
    shutdown: watch::Receiver<bool>,
    schema_sent: bool,
}

impl Tail {
    /// The next packet: the next commit's events of the channel, as frame JSON. `None` ends the
    /// stream (shutdown, or the store closed).
    async fn next_packet(&mut self) -> Option<pluginv2::StreamPacket> {
        loop {
            let batch = tokio::select! {
                _ = self.shutdown.wait_for(|s| *s) => return None,
                received = self.events.recv() => match received {
                    Ok(batch) => batch,
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "a live tail fell behind; its oldest commits were dropped");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            let frame = match &self.session {
                None => logs::live_frame(&batch),
                Some(s) => {
                    let mine: Vec<_> = batch.iter().filter(|e| e.session_id.as_deref() == Some(s.as_str())).cloned().collect();
                    if mine.is_empty() {
                        continue;
                    }
                    logs::live_frame(&mine)
                }
            };
            let json = frame.to_grafana_json("", !self.schema_sent);
            self.schema_sent = true;
            return Some(pluginv2::StreamPacket { data: json.to_string().into_bytes() });
        }
    }
}

#[tonic::async_trait]
impl pluginv2::stream_server::Stream for LiveTails {
    async fn subscribe_stream(
        &self,
        request: tonic::Request<pluginv2::SubscribeStreamRequest>,
    ) -> Result<tonic::Response<pluginv2::SubscribeStreamResponse>, tonic::Status> {
        let status = match session_of(&request.get_ref().path) {
            Some(_) => subscribe_stream_response::Status::Ok,
            None => subscribe_stream_response::Status::NotFound,
        };
        Ok(tonic::Response::new(pluginv2::SubscribeStreamResponse { status: status as i32, data: vec![] }))
    }

    type RunStreamStream = Packets;

    async fn run_stream(&self, request: tonic::Request<pluginv2::RunStreamRequest>) -> Result<tonic::Response<Packets>, tonic::Status> {
        let path = request.get_ref().path.clone();
        let Some(session) = session_of(&path) else {
            return Err(tonic::Status::not_found(format!("no stream at {path:?}: the paths are tail and tail/<session id>")));
        };
        let store = self.state.store.wait(self.state.config.store_wait).await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let tail = Tail { events: store.live().subscribe(), session, shutdown: self.shutdown.clone(), schema_sent: false };
        tracing::debug!(path, listeners = store.live().listeners(), "live tail started");
        let packets = futures::stream::unfold(tail, |mut tail| async move { tail.next_packet().await.map(|p| (Ok(p), tail)) });
        Ok(tonic::Response::new(Box::pin(packets)))
    }

    async fn publish_stream(
        &self,
        _request: tonic::Request<pluginv2::PublishStreamRequest>,
    ) -> Result<tonic::Response<pluginv2::PublishStreamResponse>, tonic::Status> {
        // the tails are read-only
        let status = publish_stream_response::Status::PermissionDenied as i32;
        Ok(tonic::Response::new(pluginv2::PublishStreamResponse { status, data: vec![] }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_paths_name_all_events_or_one_session() {
        assert_eq!(session_of("tail"), Some(None));
        assert_eq!(session_of("tail/6baa5822-a9e9-442e-8af4-2aff0ed6b5f5"), Some(Some("6baa5822-a9e9-442e-8af4-2aff0ed6b5f5".into())));
        assert_eq!(session_of("tail/a b"), None);
        assert_eq!(session_of("tail/"), None);
        assert_eq!(session_of("other"), None);
    }
}
