//! Test harness: starts the built `gpx_claudecode` the way Grafana does (plugin mode, go-plugin
//! handshake on stdout), talks to it through the pluginv2 gRPC services, and reads the frames it
//! returns with Grafana's own decoder (`../shared/grafana/frame-decoder`): every assertion on a
//! frame is on what Grafana's server sends the browser.
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gpx_claudecode::plugin::data::QueryDataResponse;
use grafana_plugin_sdk::pluginv2;
use serde_json::{json, Value};

pub mod pki;
#[path = "../../src/test_fixtures.rs"]
pub mod test_fixtures;

/// The binary under test: the one cargo built, or `$GPX_TEST_BINARY` (CI runs the protocol,
/// frame and dashboard tests a second time against the shipped static binary).
pub fn binary() -> std::path::PathBuf {
    std::env::var_os("GPX_TEST_BINARY").map(std::path::PathBuf::from).unwrap_or_else(|| env!("CARGO_BIN_EXE_gpx_claudecode").into())
}

/// Violations of Grafana's plugin.json schema (`../shared/grafana/plugin.schema.json`, draft 7,
/// the one Grafana's plugin validator uses; `$GRAFANA_PLUGIN_SCHEMA` points elsewhere).
pub fn plugin_schema_errors(plugin: &Value) -> Vec<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let schema = std::fs::read_to_string(format!("{root}/../shared/grafana/plugin.schema.json"))
        .or_else(|_| std::fs::read_to_string(std::env::var("GRAFANA_PLUGIN_SCHEMA").unwrap_or_default()))
        .expect("../shared/grafana/plugin.schema.json (or $GRAFANA_PLUGIN_SCHEMA)");
    let schema: Value = serde_json::from_str(&schema).expect("schema is JSON");
    let validator = jsonschema::draft7::new(&schema).expect("schema compiles");
    validator.iter_errors(plugin).map(|e| format!("{} at {}", e, e.instance_path)).collect()
}

/// A free loopback address (`127.0.0.1:port`) for a listener that must be known before it binds.
pub fn free_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").to_string()
}

/// A JSON file of the repository (dashboards, plugin.json).
pub fn read_repo_json(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A dashboard target with its variables replaced as Grafana's frontend does: `team` and
/// `model` at one value each or at All (`None`), `session` at one session.
pub fn interpolate(target: &Value, team: Option<&str>, model: Option<&str>, session: &str) -> Value {
    let sql_string = |v: Option<&str>| v.map(|v| format!("'{v}'")).unwrap_or_else(|| "$__all".into());
    let text = target
        .to_string()
        .replace("${team:sqlstring}", &sql_string(team))
        .replace("${model:sqlstring}", &sql_string(model))
        .replace("${session}", session)
        .replace("$session", session);
    let mut q: Value = serde_json::from_str(&text).expect("a target stays JSON");
    if let Some(obj) = q.as_object_mut() {
        obj.remove("datasource");
    }
    q
}

pub struct Plugin {
    child: Child,
    /// Address of the plugin's gRPC server, from the handshake line.
    pub plugin_addr: String,
    pub grpc_addr: String,
    pub http_addr: String,
    pub data_dir: tempfile::TempDir,
    /// Everything the process wrote to stdout after the handshake line.
    stdout_rest: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stderr_lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub handshake: String,
    pub handshake_elapsed: Duration,
}

impl Plugin {
    /// Starts the binary in plugin mode on a fresh data dir with OTLP listeners on free ports.
    pub async fn start() -> Plugin {
        Self::start_with(tempfile::tempdir().expect("temp dir"), "127.0.0.1:0", "127.0.0.1:0").await
    }

    pub async fn start_with(data_dir: tempfile::TempDir, grpc: &str, http: &str) -> Plugin {
        Self::start_program(&binary(), data_dir, grpc, http).await
    }

    /// Starts `program` (the built binary, or the packaged one in dist/) as Grafana does.
    pub async fn start_program(program: &std::path::Path, data_dir: tempfile::TempDir, grpc: &str, http: &str) -> Plugin {
        Self::start_program_env(program, data_dir, grpc, http, &[]).await
    }

    /// Starts the built binary with extra environment variables (Grafana's `GF_PLUGIN_*`).
    pub async fn start_env(data_dir: tempfile::TempDir, env: &[(&str, &str)]) -> Plugin {
        let program = &binary();
        Self::start_program_env(program, data_dir, "127.0.0.1:0", "127.0.0.1:0", env).await
    }

    pub async fn start_program_env(
        program: &std::path::Path,
        data_dir: tempfile::TempDir,
        grpc: &str,
        http: &str,
        env: &[(&str, &str)],
    ) -> Plugin {
        Self::spawn(program, data_dir, grpc, http, env, None).await
    }

    /// Starts the built binary under a file-size limit (`ulimit -f`, in bytes): writes past it
    /// fail with EFBIG as on a full disk, for every file the plugin writes.
    pub async fn start_with_file_size_limit(data_dir: tempfile::TempDir, env: &[(&str, &str)], bytes: u64) -> Plugin {
        let program = &binary();
        Self::spawn(program, data_dir, "127.0.0.1:0", "127.0.0.1:0", env, Some(bytes)).await
    }

    async fn spawn(
        program: &std::path::Path,
        data_dir: tempfile::TempDir,
        grpc: &str,
        http: &str,
        env: &[(&str, &str)],
        file_size_limit: Option<u64>,
    ) -> Plugin {
        let mut plugin = Self::launch(&[], program, data_dir, None, grpc, http, env, file_size_limit);
        plugin.wait_ready().await;
        plugin
    }

    /// Starts `program` under `wrapper` (`chroot ROOT`, `qemu-aarch64`), which is given the
    /// program path as is; the process sees `data_dir` as `data_dir_seen_as`.
    pub async fn start_wrapped(
        wrapper: &[&str],
        program: &std::path::Path,
        data_dir: tempfile::TempDir,
        data_dir_seen_as: &std::path::Path,
    ) -> Plugin {
        let mut plugin = Self::launch(wrapper, program, data_dir, Some(data_dir_seen_as), "127.0.0.1:0", "127.0.0.1:0", &[], None);
        plugin.wait_ready().await;
        plugin
    }

    /// Starts the built binary and reads its handshake, without waiting for the store or the
    /// listeners (`grpc` and `http` should then be fixed addresses, see `free_address`).
    pub fn launch_env(data_dir: tempfile::TempDir, grpc: &str, http: &str, env: &[(&str, &str)]) -> Plugin {
        let program = &binary();
        let mut plugin = Self::launch(&[], program, data_dir, None, grpc, http, env, None);
        (plugin.grpc_addr, plugin.http_addr) = (grpc.to_string(), http.to_string());
        plugin
    }

    #[allow(clippy::too_many_arguments)]
    fn launch(
        wrapper: &[&str],
        program: &std::path::Path,
        data_dir: tempfile::TempDir,
        data_dir_seen_as: Option<&std::path::Path>,
        grpc: &str,
        http: &str,
        env: &[(&str, &str)],
        file_size_limit: Option<u64>,
    ) -> Plugin {
        let started = Instant::now();
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(program);
                c
            }
            None => Command::new(program),
        };
        if let Some(bytes) = file_size_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe setrlimit between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit { rlim_cur: bytes, rlim_max: libc::RLIM_INFINITY };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
            .envs(env.iter().copied())
            .env("grafana_plugin_type", "datasource")
            .env("PLUGIN_PROTOCOL_VERSIONS", "2")
            .env("GF_PLUGIN_DATA_DIR", data_dir_seen_as.unwrap_or(data_dir.path()))
            .env("GF_PLUGIN_OTLP_GRPC_LISTEN", grpc)
            .env("GF_PLUGIN_OTLP_HTTP_LISTEN", http)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied().filter(|(k, _)| *k == "RUST_LOG"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        // the log is kept for assertions and shown with the test's output
        let stderr_lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stderr, lines) = (child.stderr.take().expect("stderr"), stderr_lines.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                lines.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut handshake = String::new();
        reader.read_line(&mut handshake).expect("read handshake");
        let handshake_elapsed = started.elapsed();
        let handshake = handshake.trim_end().to_string();
        let parts: Vec<&str> = handshake.split('|').collect();
        assert_eq!(parts.len(), 5, "handshake {handshake:?}");
        assert_eq!((parts[0], parts[1], parts[2], parts[4]), ("1", "2", "tcp", "grpc"), "handshake {handshake:?}");
        let stdout_rest = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = stdout_rest.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = reader.read_to_end(&mut buf);
            sink.lock().unwrap().extend(buf);
        });
        Plugin {
            child,
            plugin_addr: parts[3].to_string(),
            grpc_addr: String::new(),
            http_addr: String::new(),
            data_dir,
            stdout_rest,
            stderr_lines,
            handshake,
            handshake_elapsed,
        }
    }

    /// The plugin's log lines so far (stderr; Grafana's JSON log format).
    pub fn log_lines(&self) -> Vec<String> {
        self.stderr_lines.lock().unwrap().clone()
    }

    /// Polls CheckHealth until the store is open and both listeners are bound; takes their addresses.
    /// (The check itself may still say error: a full disk refuses writes on an open store.)
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let h = self.check_health().await;
            let details: Value = serde_json::from_slice(&h.json_details).unwrap_or(Value::Null);
            let addr = |which: &str| details["listeners"][which]["address"].as_str().map(str::to_string);
            let listening = |which: &str| details["listeners"][which]["state"] == "listening";
            if details["store"].is_object() && listening("grpc") && listening("http") {
                self.grpc_addr = addr("grpc").unwrap();
                self.http_addr = addr("http").unwrap();
                return;
            }
            assert!(Instant::now() < deadline, "plugin not ready: {} {}", h.message, details);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn channel(&self) -> tonic::transport::Channel {
        gpx_claudecode::plugin::data::connect(&self.plugin_addr).await.expect("connect to plugin gRPC")
    }

    pub async fn check_health(&self) -> pluginv2::CheckHealthResponse {
        let mut client = pluginv2::diagnostics_client::DiagnosticsClient::new(self.channel().await);
        client
            .check_health(pluginv2::CheckHealthRequest { plugin_context: Some(plugin_context()), ..Default::default() })
            .await
            .expect("CheckHealth")
            .into_inner()
    }

    pub async fn health_details(&self) -> Value {
        serde_json::from_slice(&self.check_health().await.json_details).unwrap()
    }

    /// Posts fixture exports to the OTLP/HTTP receiver as Claude Code does (`/v1/<signal>`, the
    /// captured content type and encoding); each must be acknowledged.
    pub async fn ingest_http(&self, fixtures: &[test_fixtures::Fixture]) {
        self.ingest_http_as(fixtures, None).await
    }

    /// As `ingest_http`, with `Authorization: Bearer <token>`.
    pub async fn ingest_http_as(&self, fixtures: &[test_fixtures::Fixture], token: Option<&str>) {
        let client = reqwest::Client::new();
        for f in fixtures {
            let mut req = client.post(format!("http://{}/v1/{}", self.http_addr, f.signal)).header("content-type", &f.content_type);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(e) = &f.content_encoding {
                req = req.header("content-encoding", e);
            }
            let resp = req.body(f.body()).send().await.expect("POST to the OTLP/HTTP receiver");
            assert_eq!(resp.status(), 200, "{}", f.file);
        }
    }

    /// Sends captured gRPC exports as Claude Code does (decoded into their request messages);
    /// each must be acknowledged.
    pub async fn ingest_grpc(&self, fixtures: &[test_fixtures::Fixture]) {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.grpc_addr)).unwrap().connect().await.unwrap();
        for f in fixtures {
            send_grpc(channel.clone(), f).await.unwrap_or_else(|e| panic!("{}: {e}", f.file));
        }
    }

    /// QueryData with one query over [from, to] (seconds), as a panel or an alert rule sends it.
    pub async fn query(&self, mut query: Value, from_s: i64, to_s: i64) -> QueryResult {
        query["refId"] = json!("A");
        let mut results = self.query_many(vec![query], from_s, to_s).await;
        results.remove("A").expect("response for refId A")
    }

    pub async fn query_many(&self, queries: Vec<Value>, from_s: i64, to_s: i64) -> BTreeMap<String, QueryResult> {
        self.query_with(queries, from_s, to_s, 60_000, 1000, Default::default()).await
    }

    /// As a Grafana-managed alert rule calls it: the stored JSON as is (datasource, intervalMs,
    /// maxDataPoints inside), `FromAlert: true`, the rule's interval (default 1 s), 43200 max
    /// data points, no frontend code in between.
    pub async fn query_as_alert(&self, query: Value, from_s: i64, to_s: i64) -> QueryResult {
        let mut q = query;
        let obj = q.as_object_mut().expect("query object");
        obj.insert("refId".into(), "A".into());
        obj.insert("datasource".into(), serde_json::json!({"type": "vibe-claudecode-datasource", "uid": "claude-code"}));
        // a rule's stored intervalMs is used as is; Grafana's default is 1 s
        let interval_ms = obj.get("intervalMs").and_then(Value::as_i64).unwrap_or(1000);
        obj.insert("intervalMs".into(), interval_ms.into());
        obj.insert("maxDataPoints".into(), 43200.into());
        let headers = [("FromAlert".to_string(), "true".to_string())].into_iter().collect();
        let mut results = self.query_with(vec![q], from_s, to_s, interval_ms, 43200, headers).await;
        results.remove("A").expect("response for refId A")
    }

    pub async fn query_with(
        &self,
        queries: Vec<Value>,
        from_s: i64,
        to_s: i64,
        interval_ms: i64,
        max_data_points: i64,
        headers: std::collections::HashMap<String, String>,
    ) -> BTreeMap<String, QueryResult> {
        let queries = queries
            .into_iter()
            .enumerate()
            .map(|(i, q)| pluginv2::DataQuery {
                ref_id: q["refId"].as_str().map(str::to_string).unwrap_or_else(|| ((b'A' + i as u8) as char).to_string()),
                query_type: q["queryType"].as_str().unwrap_or_default().to_string(),
                max_data_points,
                interval_ms,
                time_range: Some(pluginv2::TimeRange { from_epoch_ms: from_s * 1000, to_epoch_ms: to_s * 1000 }),
                json: serde_json::to_vec(&q).unwrap(),
            })
            .collect();
        let request = pluginv2::QueryDataRequest { plugin_context: Some(plugin_context()), headers, queries };
        decode_response(self.query_data(request).await)
    }

    /// One query over [from, to] (seconds) in a request with `context` (a user and datasource).
    pub async fn query_in(&self, context: &pluginv2::PluginContext, mut query: Value, from_s: i64, to_s: i64) -> QueryResult {
        query["refId"] = json!("A");
        let q = pluginv2::DataQuery {
            ref_id: "A".into(),
            query_type: query["queryType"].as_str().unwrap_or_default().to_string(),
            max_data_points: 1000,
            interval_ms: 60_000,
            time_range: Some(pluginv2::TimeRange { from_epoch_ms: from_s * 1000, to_epoch_ms: to_s * 1000 }),
            json: serde_json::to_vec(&query).unwrap(),
        };
        let request = pluginv2::QueryDataRequest { plugin_context: Some(context.clone()), headers: Default::default(), queries: vec![q] };
        decode_response(self.query_data(request).await).remove("A").expect("response for refId A")
    }

    /// QueryData as Grafana calls it, the response as it arrives.
    pub async fn query_data(&self, request: pluginv2::QueryDataRequest) -> QueryDataResponse {
        gpx_claudecode::plugin::data::call(self.channel().await, request, 256 << 20).await.expect("QueryData")
    }

    pub async fn call_resource(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> pluginv2::CallResourceResponse {
        self.call_resource_in(&plugin_context(), method, path, headers, body).await
    }

    pub async fn call_resource_in(
        &self,
        context: &pluginv2::PluginContext,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> pluginv2::CallResourceResponse {
        let mut client = pluginv2::resource_client::ResourceClient::new(self.channel().await);
        let headers = headers.iter().map(|(k, v)| (k.to_string(), pluginv2::StringList { values: vec![v.to_string()] })).collect();
        let req = pluginv2::CallResourceRequest {
            plugin_context: Some(context.clone()),
            path: path.to_string(),
            method: method.to_string(),
            url: path.to_string(),
            headers,
            body: body.into(),
        };
        let mut stream = client.call_resource(req).await.expect("CallResource").into_inner();
        stream.message().await.expect("resource response").expect("one message")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout_after_handshake(&self) -> Vec<u8> {
        self.stdout_rest.lock().unwrap().clone()
    }

    /// SIGKILL (no chance to flush anything) and wait for the process to be gone; returns the
    /// data directory for the next start.
    pub fn kill9(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.data_dir, tempfile::tempdir().expect("temp dir"))
    }

    /// SIGTERM and wait for a clean exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "plugin did not exit after SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sends one captured gRPC export; `Ok` once acknowledged.
pub async fn send_grpc(channel: tonic::transport::Channel, f: &test_fixtures::Fixture) -> Result<(), tonic::Status> {
    use opentelemetry_proto::tonic::collector::logs::v1::{logs_service_client::LogsServiceClient, ExportLogsServiceRequest};
    use opentelemetry_proto::tonic::collector::metrics::v1::{metrics_service_client::MetricsServiceClient, ExportMetricsServiceRequest};
    use opentelemetry_proto::tonic::collector::trace::v1::{trace_service_client::TraceServiceClient, ExportTraceServiceRequest};
    use prost::Message;
    let body = f.body();
    match f.signal.as_str() {
        "logs" => LogsServiceClient::new(channel).export(ExportLogsServiceRequest::decode(body.as_slice()).unwrap()).await.map(|_| ()),
        "metrics" => {
            MetricsServiceClient::new(channel).export(ExportMetricsServiceRequest::decode(body.as_slice()).unwrap()).await.map(|_| ())
        }
        _ => TraceServiceClient::new(channel).export(ExportTraceServiceRequest::decode(body.as_slice()).unwrap()).await.map(|_| ()),
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The catalog example of every query type, from the resource the query editor reads, named
/// `example "<type>"`, with a real session, prompt and log-context time put in.
pub async fn catalog_examples(plugin: &Plugin, session: &str, prompt: &str, time_ms: f64) -> Vec<(String, Value)> {
    let catalog = plugin.call_resource("GET", "query-types", &[], vec![]).await;
    let catalog: Vec<Value> = serde_json::from_slice(&catalog.body).unwrap();
    let mut examples = Vec::new();
    for entry in &catalog {
        let mut q = entry["example"].clone();
        if q.get("sessionId").is_some() {
            q["sessionId"] = json!(session);
        }
        if q.get("promptId").is_some() {
            q["promptId"] = json!(prompt);
        }
        if q["queryType"] == "log_context" {
            q["time"] = json!(time_ms);
        }
        examples.push((format!("example {}", entry["queryType"]), q));
    }
    examples
}

/// A request's context as Grafana sends it for an Admin of the org (Grafana's alerting
/// scheduler is one too) and the datasource with default settings.
pub fn plugin_context() -> pluginv2::PluginContext {
    plugin_context_for("Admin", json!({}))
}

/// The context of a request by a user of `role` (Grafana's `Viewer`, `Editor`, `Admin`, `None`;
/// empty: no user) to the datasource with `json_data`.
pub fn plugin_context_for(role: &str, json_data: Value) -> pluginv2::PluginContext {
    let user = (!role.is_empty()).then(|| pluginv2::User {
        login: role.to_lowercase(),
        name: role.into(),
        email: format!("{}@example.com", role.to_lowercase()),
        role: role.into(),
    });
    pluginv2::PluginContext {
        org_id: 1,
        plugin_id: "vibe-claudecode-datasource".into(),
        user,
        data_source_instance_settings: Some(pluginv2::DataSourceInstanceSettings {
            id: 1,
            uid: "claudecode".into(),
            name: "Claude Code".into(),
            json_data: serde_json::to_vec(&json_data).unwrap(),
            last_updated_ms: 1_700_000_000_000,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub struct QueryResult {
    pub status: i32,
    pub error: String,
    /// `plugin` or `downstream` with an error.
    pub error_source: String,
    pub frames: Vec<DecodedFrame>,
}

/// A frame as Grafana's frame decoder reports it: what Grafana's server sends the browser.
#[derive(Debug)]
pub struct DecodedFrame {
    pub name: String,
    pub ref_id: String,
    pub meta: Value,
    pub fields: Vec<DecodedField>,
    /// How Grafana classifies it for alerting: `not`, `long` or `wide`.
    pub time_series_schema: String,
    /// The decoder's whole report (frameJSON, Go types, …).
    pub report: Value,
}

#[derive(Debug)]
pub struct DecodedField {
    pub name: String,
    pub labels: Value,
    pub config: Value,
    /// The browser's field type: `time`, `number`, `string`, `boolean` or `other` (JSON).
    pub grafana_type: String,
    /// The Go type Grafana's server holds, e.g. `[]*float64`.
    pub go_type: String,
    /// Values as the browser gets them: numbers, strings, booleans, JSON, null; times in ms.
    pub values: Vec<Value>,
}

impl DecodedFrame {
    pub fn field(&self, name: &str) -> &DecodedField {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name} in {:?}", self.fields.iter().map(|f| &f.name).collect::<Vec<_>>()))
    }
    pub fn rows(&self) -> usize {
        self.fields.first().map(|f| f.values.len()).unwrap_or(0)
    }
    /// Row index where `field` equals `value`.
    pub fn row_where(&self, field: &str, value: &str) -> usize {
        self.field(field).values.iter().position(|v| v == value).unwrap_or_else(|| panic!("no row with {field} = {value}"))
    }
    pub fn frame_type(&self) -> &str {
        self.meta["type"].as_str().unwrap_or_default()
    }
}

impl DecodedField {
    pub fn f64s(&self) -> Vec<f64> {
        self.values.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect()
    }
    pub fn i64s(&self) -> Vec<i64> {
        self.values.iter().map(|v| v.as_i64().unwrap_or(i64::MIN)).collect()
    }
    pub fn strs(&self) -> Vec<String> {
        self.values.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect()
    }
    pub fn is_number(&self) -> bool {
        self.grafana_type == "number"
    }
    pub fn is_time(&self) -> bool {
        self.grafana_type == "time"
    }
}

/// Grafana's frame decoder (grafana-plugin-sdk-go `data`), from `shared/` beside the checkout or
/// `$GRAFANA_FRAME_DECODER`.
pub fn frame_decoder() -> std::path::PathBuf {
    match std::env::var_os("GRAFANA_FRAME_DECODER") {
        Some(path) => path.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/grafana/frame-decoder/grafana-frame-decoder"),
    }
}

/// Runs Grafana's decoder on frames (each an Arrow IPC file from `DataResponse.frames`) and
/// returns its report of each, in order. A frame Grafana cannot decode has `error` set.
pub fn grafana_reports(frames: &[&[u8]]) -> Vec<Value> {
    if frames.is_empty() {
        return vec![];
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let paths: Vec<std::path::PathBuf> = frames
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let path = dir.path().join(format!("frame-{i}.arrow"));
            std::fs::write(&path, bytes).expect("write frame");
            path
        })
        .collect();
    let decoder = frame_decoder();
    let out = Command::new(&decoder).args(&paths).output().unwrap_or_else(|e| panic!("run {}: {e}", decoder.display()));
    assert!(out.status.success(), "{}: {}", decoder.display(), String::from_utf8_lossy(&out.stderr));
    let mut reports: BTreeMap<String, Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("decoder output {line:?}: {e}"));
            (v["file"].as_str().unwrap_or_default().to_string(), v)
        })
        .collect();
    paths
        .iter()
        .map(|p| {
            let key = p.file_name().unwrap().to_string_lossy().to_string();
            reports
                .remove(&key)
                .or_else(|| reports.remove(&p.display().to_string()))
                .unwrap_or_else(|| panic!("no decoder report for {key}: {:?}", reports.keys()))
        })
        .collect()
}

/// A frame from the decoder's report; panics when Grafana could not decode it (which would fail
/// the whole response in Grafana).
pub fn decoded_frame(report: &Value) -> DecodedFrame {
    assert!(report.get("error").is_none(), "Grafana cannot decode the frame: {}", report["error"]);
    let schema = report["frameJSON"]["schema"]["fields"].as_array().cloned().unwrap_or_default();
    let values = report["frameJSON"]["data"]["values"].as_array().cloned().unwrap_or_default();
    let go_fields = report["fields"].as_array().cloned().unwrap_or_default();
    let fields = schema
        .iter()
        .enumerate()
        .map(|(i, f)| DecodedField {
            name: f["name"].as_str().unwrap_or_default().to_string(),
            labels: f.get("labels").cloned().unwrap_or(json!({})),
            config: f.get("config").cloned().unwrap_or(json!({})),
            grafana_type: f["type"].as_str().unwrap_or_default().to_string(),
            go_type: go_fields.get(i).and_then(|g| g["type"].as_str()).unwrap_or_default().to_string(),
            values: values.get(i).and_then(Value::as_array).cloned().unwrap_or_default(),
        })
        .collect();
    DecodedFrame {
        name: report["name"].as_str().unwrap_or_default().to_string(),
        ref_id: report["refId"].as_str().unwrap_or_default().to_string(),
        meta: report.get("meta").cloned().unwrap_or(Value::Null),
        fields,
        time_series_schema: report["timeSeriesSchemaType"].as_str().unwrap_or_default().to_string(),
        report: report.clone(),
    }
}

/// Every response of a QueryData call, its frames decoded by Grafana's decoder in one run.
pub fn decode_response(resp: QueryDataResponse) -> BTreeMap<String, QueryResult> {
    let all: Vec<&[u8]> = resp.responses.values().flat_map(|r| r.frames.iter().map(Vec::as_slice)).collect();
    let mut reports = grafana_reports(&all).into_iter();
    resp.responses
        .iter()
        .map(|(ref_id, r)| {
            let frames = r.frames.iter().map(|_| decoded_frame(&reports.next().expect("a report per frame"))).collect();
            (ref_id.clone(), QueryResult { status: r.status, error: r.error.clone(), error_source: r.error_source.clone(), frames })
        })
        .collect()
}

/// What Grafana's server-side expressions accept (pkg/expr): one frame that is a numeric table
/// (only string fields and exactly one number field), or wide series (time first, ascending,
/// no nulls, then number fields), or "no data" (a frame without fields).
pub fn assert_alertable(what: &str, r: &QueryResult) {
    assert_eq!(r.error, "", "{what}");
    assert!(!r.frames.is_empty(), "{what}: no frames");
    if r.frames.len() == 1 && r.frames[0].fields.is_empty() {
        return;
    }
    if r.frames.len() == 1 && !r.frames[0].fields.iter().any(DecodedField::is_time) {
        let numbers = r.frames[0].fields.iter().filter(|f| f.is_number()).count();
        let others = r.frames[0].fields.iter().filter(|f| !f.is_number() && f.grafana_type != "string").count();
        assert!(numbers == 1 && others == 0, "{what}: numeric table needs one number and only strings: {:?}", r.frames[0].fields);
        return;
    }
    for frame in &r.frames {
        assert_eq!(frame.time_series_schema, "wide", "{what}: Grafana reads it as a wide series");
        assert!(frame.fields[0].is_time(), "{what}: time first");
        let times = frame.fields[0].i64s();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{what}: ascending, unique times");
        assert!(frame.fields[0].values.iter().all(|v| !v.is_null()), "{what}: no null times");
        for f in &frame.fields[1..] {
            assert!(f.is_number(), "{what}: {} is {}", f.name, f.grafana_type);
        }
    }
}

/// An OTLP logs export of `records` api_request events that all carry `session.id` = `id`, so a
/// count per session shows what of it was stored.
pub fn log_export(id: &str, records: usize) -> opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let kv = |key: &str, value: &str| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
    };
    let base = 1_795_296_000_000_000_000u64;
    let log_records = (0..records)
        .map(|i| LogRecord {
            time_unix_nano: base + i as u64 * 1_000_000,
            body: Some(AnyValue { value: Some(any_value::Value::StringValue("claude_code.api_request".into())) }),
            attributes: vec![
                kv("event.name", "api_request"),
                kv("session.id", id),
                kv("model", "claude-sonnet-4-6"),
                kv("cost_usd", "0.001"),
                kv("prompt", &"x".repeat(200)),
            ],
            ..Default::default()
        })
        .collect();
    opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs { scope_logs: vec![ScopeLogs { log_records, ..Default::default() }], ..Default::default() }],
    }
}

/// Claude Code's statusline JSON as its documentation describes it, with a plan's rate limits.
pub const STATUS: &str = r#"{"hook_event_name":"Status","session_id":"6fa859a7-0176-4ea5-a4a8-0e74173978d7","transcript_path":"/tmp/t.jsonl","cwd":"/work",
  "model":{"id":"claude-opus-5-5","display_name":"Opus 5.5"},"workspace":{"current_dir":"/work","project_dir":"/work"},"version":"2.1.332",
  "output_style":{"name":"default"},"cost":{"total_cost_usd":0.0223026,"total_duration_ms":642,"total_api_duration_ms":117,"total_lines_added":0,"total_lines_removed":0},
  "exceeds_200k_tokens":false,"rate_limits":{"five_hour":{"used_percentage":42.5,"resets_at":1796122800},"seven_day":{"used_percentage":12,"resets_at":"2026-12-04T00:00:00Z"}}}"#;
