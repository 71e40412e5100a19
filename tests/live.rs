//! Live tails through Grafana Live, as Grafana drives the plugin: a `live` query answers with a
//! channel, SubscribeStream admits its path, RunStream sends each exported event once, in order,
//! within a second, to every stream at once; streams stop when their callers go and when the
//! plugin shuts down. The lines are the `logs` query's lines for the same events, in the JSON
//! Grafana's own frame code makes (checked against its decoder).
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::test_fixtures::{run, Fixture};
use common::{send_grpc, Plugin};
use grafana_plugin_sdk::pluginv2;
use pluginv2::stream_client::StreamClient;
use serde_json::{json, Value};

const FROM: i64 = 1_700_000_000;
const TO: i64 = 1_900_000_000;
const TOOLS_SESSION: &str = "6baa5822-a9e9-442e-8af4-2aff0ed6b5f5";
const EXHAUST_SESSION: &str = "d7efca2a-637d-4fd0-bdfb-b15cdb598c72";

/// A RunStream call as Grafana makes it for the first subscriber of a channel.
async fn run_stream(plugin: &Plugin, path: &str) -> tonic::Streaming<pluginv2::StreamPacket> {
    let request =
        pluginv2::RunStreamRequest { plugin_context: Some(common::plugin_context()), path: path.into(), data: Default::default() };
    StreamClient::new(plugin.channel().await).run_stream(request).await.expect("RunStream").into_inner()
}

/// What a stream delivered: its lines by field name, and the first packet's schema.
#[derive(Default)]
struct Received {
    schema: Option<Value>,
    names: Vec<String>,
    lines: Vec<BTreeMap<String, Value>>,
}

impl Received {
    /// Reads packets until `n` lines arrived in all, each within `within` of the last.
    async fn take(&mut self, stream: &mut tonic::Streaming<pluginv2::StreamPacket>, n: usize, within: Duration) {
        while self.lines.len() < n {
            let packet = tokio::time::timeout(within, stream.message())
                .await
                .unwrap_or_else(|_| panic!("no line within {within:?} after {} lines", self.lines.len()))
                .expect("stream error")
                .expect("stream ended");
            let json: Value = serde_json::from_slice(&packet.data).unwrap();
            if let Some(schema) = json.get("schema") {
                assert!(self.schema.is_none(), "the schema comes once, with the first packet");
                self.names = schema["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_string()).collect();
                self.schema = Some(schema.clone());
            }
            let values = json["data"]["values"].as_array().unwrap();
            for row in 0..values[0].as_array().unwrap().len() {
                self.lines.push(self.names.iter().zip(values).map(|(name, column)| (name.clone(), column[row].clone())).collect());
            }
        }
    }

    fn column(&self, name: &str) -> Vec<Value> {
        self.lines.iter().map(|l| l[name].clone()).collect()
    }
}

/// Nothing more arrives for a while.
async fn quiet(stream: &mut tonic::Streaming<pluginv2::StreamPacket>) {
    let more = tokio::time::timeout(Duration::from_millis(700), stream.message()).await;
    assert!(more.is_err(), "nothing else was exported, yet a packet came: {more:?}");
}

async fn live_tails(plugin: &Plugin) -> u64 {
    plugin.health_details().await["store"]["live_tails"].as_u64().unwrap()
}

async fn wait_for_tails(plugin: &Plugin, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while live_tails(plugin).await != n {
        assert!(Instant::now() < deadline, "live tails: {} instead of {n}", live_tails(plugin).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends the exports one by one, each acknowledged before the next.
async fn export(plugin: &Plugin, fixtures: &[Fixture]) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", plugin.grpc_addr)).unwrap().connect().await.unwrap();
    for f in fixtures {
        send_grpc(channel.clone(), f).await.unwrap_or_else(|e| panic!("{}: {e}", f.file));
    }
}

#[tokio::test]
async fn a_live_query_answers_with_its_channel() {
    let plugin = Plugin::start().await;
    let r = plugin.query(json!({"queryType": "live", "sessionId": TOOLS_SESSION}), FROM, TO).await;
    assert_eq!(r.error, "");
    let frame = &r.frames[0];
    assert_eq!(frame.meta["channel"], format!("ds/claudecode/content/tail/{TOOLS_SESSION}"));
    assert_eq!(frame.frame_type(), "log-lines");
    assert_eq!(frame.rows(), 0);
    assert_eq!(frame.fields[0].name, "timestamp");
    let all = plugin.query(json!({"queryType": "live"}), FROM, TO).await;
    assert_eq!(all.frames[0].meta["channel"], "ds/claudecode/content/tail");
    // a user who may not read content gets the channel whose lines have it hidden
    let viewer = common::plugin_context_for("Viewer", json!({}));
    let hidden = plugin.query_in(&viewer, json!({"queryType": "live", "sessionId": TOOLS_SESSION}), FROM, TO).await;
    assert_eq!(hidden.frames[0].meta["channel"], format!("ds/claudecode/tail/{TOOLS_SESSION}"));
    // "All" of the dashboard's variable follows every session
    let every = plugin.query(json!({"queryType": "live", "sessionId": "$__all"}), FROM, TO).await;
    assert_eq!(every.frames[0].meta["channel"], "ds/claudecode/content/tail");
    let bad = plugin.query(json!({"queryType": "live", "sessionId": "a b"}), FROM, TO).await;
    assert_eq!((bad.status, bad.error_source.as_str()), (400, "downstream"));
    assert!(bad.error.contains("live tail follows a session id"), "{}", bad.error);

    // Grafana asks before it runs a stream: the tails exist, nothing else does, none is
    // writable, and the content ones are for the roles that may read content (1 not found, 2
    // permission denied)
    let mut client = StreamClient::new(plugin.channel().await);
    let admin = common::plugin_context();
    let session_tail = format!("tail/{TOOLS_SESSION}");
    let session_content = format!("content/tail/{TOOLS_SESSION}");
    for (path, context, status) in [
        ("tail", &admin, 0),
        (&*session_tail, &admin, 0),
        ("content/tail", &admin, 0),
        (&*session_content, &admin, 0),
        ("tail", &viewer, 0),
        (&*session_tail, &viewer, 0),
        ("content/tail", &viewer, 2),
        (&*session_content, &viewer, 2),
        ("nope", &admin, 1),
        ("tail/a b", &admin, 1),
    ] {
        let request =
            pluginv2::SubscribeStreamRequest { plugin_context: Some(context.clone()), path: path.into(), data: Default::default() };
        assert_eq!(client.subscribe_stream(request).await.unwrap().into_inner().status, status, "{path} as {:?}", context.user);
    }
    // and a stream of content is not run for them either
    let request =
        pluginv2::RunStreamRequest { plugin_context: Some(viewer.clone()), path: "content/tail".into(), data: Default::default() };
    assert_eq!(client.run_stream(request).await.map(|_| ()).unwrap_err().code(), tonic::Code::PermissionDenied);
    let publish = pluginv2::PublishStreamRequest { plugin_context: Some(common::plugin_context()), path: "tail".into(), data: vec![] };
    assert_eq!(client.publish_stream(publish).await.unwrap().into_inner().status, 2, "permission denied");
}

#[tokio::test]
async fn streams_get_each_exported_event_once_in_order_within_a_second() {
    let plugin = Plugin::start().await;
    // exported before anyone subscribes: never streamed
    plugin.ingest_http(&run("simple-gzip", "http/protobuf")).await;
    let mut everything = run_stream(&plugin, "content/tail").await;
    let mut one_session = run_stream(&plugin, &format!("content/tail/{TOOLS_SESSION}")).await;
    let mut hidden = run_stream(&plugin, "tail").await;
    wait_for_tails(&plugin, 3).await;

    // each logs export shows up on the streams within a second of its acknowledgement
    let tools = run("tools", "grpc");
    let (mut all, mut mine, mut masked) = (Received::default(), Received::default(), Received::default());
    let mut expected = 0;
    for f in &tools {
        export(&plugin, std::slice::from_ref(f)).await;
        if f.signal == "logs" {
            expected += f.counts["log_records"] as usize;
            all.take(&mut everything, expected, Duration::from_secs(1)).await;
            mine.take(&mut one_session, expected, Duration::from_secs(1)).await;
            masked.take(&mut hidden, expected, Duration::from_secs(1)).await;
        }
    }
    assert_eq!(expected, 35);
    let sequences: Vec<Value> = (0..35).map(|i| json!(i)).collect();
    assert_eq!(all.column("event_sequence"), sequences, "every event once, in order");
    assert_eq!(mine.column("event_sequence"), sequences);

    // another session's events reach the stream of everything only
    let exhaust: Vec<Fixture> = run("exhaust", "http/json");
    plugin.ingest_http(&exhaust).await;
    all.take(&mut everything, 38, Duration::from_secs(1)).await;
    assert_eq!(all.column("session_id")[35..], [json!(EXHAUST_SESSION), json!(EXHAUST_SESSION), json!(EXHAUST_SESSION)]);
    assert_eq!(all.column("severity")[35..], [json!("info"), json!("error"), json!("error")]);
    quiet(&mut one_session).await;

    // an export sent again is stored once and streamed once
    export(&plugin, &tools.iter().filter(|f| f.signal == "logs").cloned().collect::<Vec<_>>()).await;
    quiet(&mut everything).await;

    // the lines are the logs query's lines, field for field, in the JSON Grafana makes of frames;
    // with content hidden, the lines a Viewer's logs query gets
    let query = json!({"queryType": "logs", "sessions": [TOOLS_SESSION, EXHAUST_SESSION]});
    let viewer = common::plugin_context_for("Viewer", json!({}));
    let logs = plugin.query_in(&viewer, query.clone(), FROM, TO).await;
    assert_eq!(logs.error, "");
    assert_same_lines(&masked, &logs.frames[0]);
    assert!(masked.lines.iter().any(|l| l["body"].as_str().unwrap().contains("prompt=[hidden]")));
    let logs = plugin.query(query, FROM, TO).await;
    assert_same_lines(&all, &logs.frames[0]);
    assert!(!all.lines.iter().any(|l| l["body"].as_str().unwrap().contains("[hidden]")));

    // the streams stop when their callers go: nothing kept for them
    drop(everything);
    drop(one_session);
    drop(hidden);
    wait_for_tails(&plugin, 0).await;
}

/// A stream's lines are the rows of the logs frame with the same session and sequence, every
/// field but `id` equal as Grafana's frame JSON has it.
fn assert_same_lines(all: &Received, frame: &common::DecodedFrame) {
    let frame_json = &frame.report["frameJSON"];
    let names: Vec<&str> = frame.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(all.names, names, "the same fields in the same order");
    for (live, logged) in
        all.schema.as_ref().unwrap()["fields"].as_array().unwrap().iter().zip(frame_json["schema"]["fields"].as_array().unwrap())
    {
        assert_eq!(live["type"], logged["type"], "{}", live["name"]);
        assert_eq!(live["typeInfo"]["frame"], logged["typeInfo"]["frame"], "{}", live["name"]);
        assert_eq!(live["config"]["unit"], logged["config"]["unit"], "{}", live["name"]);
    }
    for line in &all.lines {
        let key = (line["session_id"].clone(), line["event_sequence"].clone());
        let row = (0..frame.rows())
            .find(|r| (frame.field("session_id").values[*r].clone(), frame.field("event_sequence").values[*r].clone()) == key)
            .unwrap_or_else(|| panic!("{key:?} is not among the logs"));
        for name in names.iter().filter(|n| **n != "id") {
            assert_eq!(line[*name], frame_json["data"]["values"][names.iter().position(|n| n == name).unwrap()][row], "{name} of {key:?}");
        }
    }
}

#[tokio::test]
async fn streams_end_cleanly_when_the_plugin_stops() {
    let mut plugin = Plugin::start().await;
    let mut stream = run_stream(&plugin, "tail").await;
    wait_for_tails(&plugin, 1).await;
    let started = Instant::now();
    assert!(plugin.terminate().await.success());
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown waited on the stream");
    // the stream closed with the plugin: an orderly end or a closed connection, never a hang
    let end = tokio::time::timeout(Duration::from_secs(2), stream.message()).await.expect("the stream ended");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}
