//! The plugin under test, started as Grafana starts it: this same executable in plugin mode on a
//! data directory, handshake read from stdout, then the pluginv2 services over gRPC. A sampler
//! thread records its resident memory per benchmark phase.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grafana_plugin_sdk::pluginv2;
use serde_json::Value;

/// A running plugin process.
pub struct PluginProcess {
    child: Child,
    channel: tonic::transport::Channel,
    pub grpc_addr: String,
    pub http_addr: String,
    /// Process start → handshake line on stdout.
    pub handshake: Duration,
    /// Process start → store open and both OTLP listeners bound (polled through CheckHealth).
    pub ready: Duration,
    pub rss: RssSampler,
}

/// A request of an org Admin (who reads content), as Grafana sends it.
pub fn plugin_context() -> pluginv2::PluginContext {
    plugin_context_as("Admin")
}

/// A request of a user of Grafana role `role` (`Viewer`s read content hidden by default).
pub fn plugin_context_as(role: &str) -> pluginv2::PluginContext {
    pluginv2::PluginContext {
        org_id: 1,
        plugin_id: crate::config::PLUGIN_ID.into(),
        user: Some(pluginv2::User { login: role.to_lowercase(), name: role.into(), email: String::new(), role: role.into() }),
        data_source_instance_settings: Some(pluginv2::DataSourceInstanceSettings {
            id: 1,
            uid: "claudecode".into(),
            name: "Claude Code".into(),
            json_data: b"{}".to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl PluginProcess {
    /// Starts `gpx_claudecode` in plugin mode on `data_dir` with OTLP listeners on free ports.
    pub async fn start(data_dir: &Path) -> Result<PluginProcess, String> {
        let program = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
        let started = Instant::now();
        let mut child = Command::new(&program)
            .env("grafana_plugin_type", "datasource")
            .env("PLUGIN_PROTOCOL_VERSIONS", "2")
            .env("GF_PLUGIN_DATA_DIR", data_dir)
            .env("GF_PLUGIN_OTLP_GRPC_LISTEN", "127.0.0.1:0")
            .env("GF_PLUGIN_OTLP_HTTP_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| format!("reading the handshake: {e}"))?;
        let handshake = started.elapsed();
        // keep draining stdout so the child never blocks on a full pipe
        std::thread::spawn(move || {
            let _ = reader.read_to_end(&mut Vec::new());
        });
        let parts: Vec<&str> = line.trim_end().split('|').collect();
        if parts.len() != 5 || parts[2] != "tcp" {
            let _ = child.kill();
            return Err(format!("unexpected handshake {line:?}"));
        }
        let channel = crate::plugin::data::connect(parts[3]).await.map_err(|e| format!("connecting to the plugin: {e}"))?;
        let rss = RssSampler::start(child.id());
        let mut plugin =
            PluginProcess { child, channel, grpc_addr: String::new(), http_addr: String::new(), handshake, ready: Duration::ZERO, rss };
        plugin.wait_ready(started).await?;
        Ok(plugin)
    }

    async fn wait_ready(&mut self, started: Instant) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let h = self.check_health().await?;
            let details: Value = serde_json::from_slice(&h.json_details).unwrap_or(Value::Null);
            let listening = |which: &str| details["listeners"][which]["state"] == "listening";
            if h.status == pluginv2::check_health_response::HealthStatus::Ok as i32 && listening("grpc") && listening("http") {
                self.ready = started.elapsed();
                let addr = |which: &str| details["listeners"][which]["address"].as_str().unwrap_or_default().to_string();
                self.grpc_addr = addr("grpc");
                self.http_addr = addr("http");
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("plugin not ready: {}", h.message));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn check_health(&self) -> Result<pluginv2::CheckHealthResponse, String> {
        let mut client = pluginv2::diagnostics_client::DiagnosticsClient::new(self.channel.clone());
        client
            .check_health(pluginv2::CheckHealthRequest { plugin_context: Some(plugin_context()), ..Default::default() })
            .await
            .map(|r| r.into_inner())
            .map_err(|e| format!("CheckHealth: {e}"))
    }

    /// One QueryData request of an Admin with `queries` over `[from_ms, to_ms]`; fails on any
    /// query error.
    pub async fn query(&self, queries: &[Value], from_ms: i64, to_ms: i64) -> Result<crate::plugin::data::QueryDataResponse, String> {
        self.query_as("Admin", queries, from_ms, to_ms).await
    }

    /// As `query`, by a user of Grafana role `role`.
    pub async fn query_as(
        &self,
        role: &str,
        queries: &[Value],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<crate::plugin::data::QueryDataResponse, String> {
        let queries = queries
            .iter()
            .enumerate()
            .map(|(i, q)| pluginv2::DataQuery {
                ref_id: format!("Q{i}"),
                query_type: q["queryType"].as_str().unwrap_or_default().to_string(),
                max_data_points: 1000,
                interval_ms: 0,
                time_range: Some(pluginv2::TimeRange { from_epoch_ms: from_ms, to_epoch_ms: to_ms }),
                json: serde_json::to_vec(q).unwrap_or_default(),
            })
            .collect();
        let request = pluginv2::QueryDataRequest { plugin_context: Some(plugin_context_as(role)), headers: Default::default(), queries };
        let response = crate::plugin::data::call(self.channel.clone(), request, 256 << 20).await.map_err(|e| format!("QueryData: {e}"))?;
        if let Some((ref_id, r)) = response.responses.iter().find(|(_, r)| !r.error.is_empty()) {
            return Err(format!("query {ref_id} failed: {}", r.error));
        }
        Ok(response)
    }

    /// SIGTERM, then wait for the exit (the store checkpoints on the way out).
    pub fn stop(mut self) -> Result<Duration, String> {
        let started = Instant::now();
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(started.elapsed()),
                Ok(Some(status)) => return Err(format!("plugin exited with {status}")),
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    return Err("plugin did not exit after SIGTERM".into());
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

impl Drop for PluginProcess {
    fn drop(&mut self) {
        self.rss.stop();
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Samples a process's resident set size every 10 ms and keeps the peak per phase.
#[derive(Clone)]
pub struct RssSampler {
    phase: Arc<Mutex<String>>,
    peaks: Arc<Mutex<BTreeMap<String, u64>>>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let sampler =
            RssSampler { phase: Arc::new(Mutex::new("idle".into())), peaks: Arc::default(), stop: Arc::new(AtomicBool::new(false)) };
        let s = sampler.clone();
        let status = PathBuf::from(format!("/proc/{pid}/status"));
        std::thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                let Some(rss) = read_rss_bytes(&status) else { break };
                let phase = s.phase.lock().map(|p| p.clone()).unwrap_or_default();
                if let Ok(mut peaks) = s.peaks.lock() {
                    let peak = peaks.entry(phase).or_default();
                    *peak = (*peak).max(rss);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        sampler
    }

    /// Attributes the following samples to `phase`.
    pub fn phase(&self, phase: &str) {
        if let Ok(mut p) = self.phase.lock() {
            *p = phase.to_string();
        }
        // let the sampler see the new phase before the work starts
        std::thread::sleep(Duration::from_millis(20));
    }

    pub fn peaks(&self) -> BTreeMap<String, u64> {
        self.peaks.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// VmRSS of /proc/PID/status in bytes; None once the process is gone.
fn read_rss_bytes(status: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(status).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
