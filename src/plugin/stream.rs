//! Grafana Live: the plugin's Stream service. A `live` query answers with an empty log-lines
//! frame whose `meta.channel` is `ds/<uid>/tail` (every event) or `ds/<uid>/tail/<session>`,
//! under `content/` for a user who may read content (`query::access`); the browser subscribes,
//! Grafana calls SubscribeStream (which refuses a content channel to other roles) and, for the
//! first subscriber of a channel, RunStream, and fans its packets out to every subscriber: so
//! a channel's lines never depend on who subscribed first, `tail` ones have content hidden. RunStream sends the events of each commit from
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
use crate::store::masked::Access;

/// A channel: which events it follows (`None` for all, else one session's) and whether its
/// lines show content (`content/tail…`) or have it hidden (`tail…`).
#[derive(Debug, Clone, PartialEq)]
struct Channel {
    session: Option<String>,
    access: Access,
}

fn channel_of(path: &str) -> Option<Channel> {
    let (access, tail) = match path.strip_prefix("content/") {
        Some(rest) => (Access::Content, rest),
        None => (Access::Masked, path),
    };
    let session = if tail == "tail" { None } else { Some(tail.strip_prefix("tail/")?.to_string()) };
    // the same rule `live` queries make their paths with
    let made = logs::tail_path(session.as_deref(), access).ok()?;
    (made == path).then_some(Channel { session, access })
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

    /// Whether the request's user may follow the channel: a content channel needs the
    /// datasource's content role (a bad setting lets no one).
    fn may_read(&self, channel: &Channel, context: Option<&pluginv2::PluginContext>) -> bool {
        if channel.access == Access::Masked {
            return true;
        }
        let json = context
            .and_then(|c| c.data_source_instance_settings.as_ref())
            .and_then(|s| serde_json::from_slice::<serde_json::Value>(&s.json_data).ok())
            .unwrap_or_default();
        let role = super::user_role(context);
        self.state.content_access(Some(&json), role).is_ok_and(|(access, _)| access == Access::Content)
    }
}

type Packets = Pin<Box<dyn Stream<Item = Result<pluginv2::StreamPacket, tonic::Status>> + Send>>;

/// A stream's state between packets.
struct Tail {
    events: broadcast::Receiver<LiveBatch>,
    channel: Channel,
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
            let frame = match (&self.channel.session, self.channel.access) {
                (None, Access::Content) => logs::live_frame(&batch),
                (session, access) => {
                    let mine: Vec<_> = batch
                        .iter()
                        .filter(|e| session.as_ref().is_none_or(|s| e.session_id.as_deref() == Some(s.as_str())))
                        .map(|e| if access == Access::Masked { e.masked() } else { e.clone() })
                        .collect();
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
        let request = request.get_ref();
        let status = match channel_of(&request.path) {
            None => subscribe_stream_response::Status::NotFound,
            Some(channel) if !self.may_read(&channel, request.plugin_context.as_ref()) => {
                subscribe_stream_response::Status::PermissionDenied
            }
            Some(_) => subscribe_stream_response::Status::Ok,
        };
        Ok(tonic::Response::new(pluginv2::SubscribeStreamResponse { status: status as i32, data: vec![] }))
    }

    type RunStreamStream = Packets;

    async fn run_stream(&self, request: tonic::Request<pluginv2::RunStreamRequest>) -> Result<tonic::Response<Packets>, tonic::Status> {
        let path = request.get_ref().path.clone();
        let Some(channel) = channel_of(&path) else {
            return Err(tonic::Status::not_found(format!(
                "no stream at {path:?}: the paths are tail and tail/<session id>, with content content/tail and content/tail/<session id>"
            )));
        };
        // Grafana subscribes before it runs a channel; checked again all the same
        if !self.may_read(&channel, request.get_ref().plugin_context.as_ref()) {
            return Err(tonic::Status::permission_denied(format!("{path}: content is not for this user's role")));
        }
        let store = self.state.store.wait(self.state.config.store_wait).await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let tail = Tail { events: store.live().subscribe(), channel, shutdown: self.shutdown.clone(), schema_sent: false };
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
    fn channel_paths_name_all_events_or_one_session_with_or_without_content() {
        let channel = |session: Option<&str>, access| Some(Channel { session: session.map(str::to_string), access });
        assert_eq!(channel_of("tail"), channel(None, Access::Masked));
        assert_eq!(channel_of("content/tail"), channel(None, Access::Content));
        let id = "6baa5822-a9e9-442e-8af4-2aff0ed6b5f5";
        assert_eq!(channel_of(&format!("tail/{id}")), channel(Some(id), Access::Masked));
        assert_eq!(channel_of(&format!("content/tail/{id}")), channel(Some(id), Access::Content));
        for bad in ["tail/a b", "tail/", "other", "content/", "content/other", "content/content/tail"] {
            assert_eq!(channel_of(bad), None, "{bad}");
        }
    }
}
