//! Terminal commands on the store: `report`, `query`, `sql`, `export` and `status`. One process
//! owns the DuckDB file; a command asks that process's local API (`api`) when one runs and
//! opens the file itself when none does, and says which it used (on stderr).
pub mod output;
pub mod range;
pub mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::api::{self, QueryRequest, QueryResponse, Status};
use crate::app::AppState;
use crate::config::Config;
use crate::export::{ExportCounts, ExportFormat, ExportSignal};

/// Where a command finds the data: shared by every terminal command.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Data directory of the DuckDB file [env: GF_PLUGIN_DATA_DIR] [default: ./data]
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// A running plugin's or `serve`'s OTLP/HTTP address, e.g. http://127.0.0.1:4318 [default: the one
    /// the data directory names while its file is held, else http://127.0.0.1:4318 when there is no file]
    #[arg(long, global = true)]
    pub endpoint: Option<String>,
    /// Ingest token of the running process, when it has one
    #[arg(long, global = true, env = "GF_PLUGIN_INGEST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// How a command reaches the data.
pub enum Backend {
    /// This process opened the file (nothing else held it).
    File { state: Arc<AppState>, path: PathBuf },
    /// The process that holds the file answers, through its local API.
    Process { url: String, token: Option<String>, client: reqwest::Client },
}

impl Backend {
    /// The running process when one holds the file (or `--endpoint` names one), else the file.
    pub async fn connect(target: &Target) -> Result<Backend, String> {
        let process = |url: String| Backend::Process {
            url: url.trim_end_matches('/').to_string(),
            token: target.token.clone().filter(|t| !t.is_empty()),
            client: reqwest::Client::new(),
        };
        if let Some(url) = &target.endpoint {
            return Ok(process(url.clone()));
        }
        let config = Config::standalone(target.data_dir.clone(), None, None);
        let dir = config.data_dir.clone().unwrap_or_else(|_| PathBuf::from("data"));
        // where this machine's receiver listens by default (GF_PLUGIN_OTLP_HTTP_LISTEN)
        let default_endpoint = api::local_url(&config.http_listen).unwrap_or_else(|| "http://127.0.0.1:4318".into());
        let file = dir.join(crate::store::DB_FILE);
        if !file.exists() {
            // no file here: a process elsewhere (Grafana's plugin data directory) may answer
            let backend = process(default_endpoint.clone());
            return match backend.status().await {
                Ok(_) => Ok(backend),
                Err(e) => Err(format!(
                    "no data in {} (no {}) and no receiver at {default_endpoint} ({e}): start `gpx_claudecode serve` and point Claude Code at it, or pass --data-dir DIR or --endpoint URL",
                    dir.display(),
                    crate::store::DB_FILE
                )),
            };
        }
        let state = AppState::new(config);
        match state.store.open().await {
            Ok(_) => Ok(Backend::File { state, path: file }),
            Err(e) if e.is_lock_conflict() => {
                let url = api::discover(&dir).unwrap_or(default_endpoint);
                Ok(process(url))
            }
            Err(e) => Err(format!("cannot open {}: {e}", file.display())),
        }
    }

    /// Which it is, for the "from …" line on stderr.
    pub fn describe(&self) -> String {
        match self {
            Backend::File { path, .. } => format!("the file {} (no process holds it)", path.display()),
            Backend::Process { url, .. } => format!("the running process at {url}"),
        }
    }

    pub fn say_source(&self) {
        eprintln!("gpx_claudecode: read from {}", self.describe());
    }

    pub async fn close(self) {
        if let Backend::File { state, .. } = self {
            state.store.close().await;
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<reqwest::Response, String> {
        let Backend::Process { url, token, client } = self else { return Err("not a process".into()) };
        let mut request = client.get(format!("{url}{path}")).query(query).timeout(Duration::from_secs(120));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        checked(url, response).await
    }

    pub async fn query(&self, request: QueryRequest) -> Result<QueryResponse, String> {
        match self {
            Backend::File { state, .. } => {
                let store = state.store().map_err(|e| format!("the store: {e}"))?;
                // whoever can open the file reads all of it: no role applies
                let settings = state.query_settings(None, crate::query::access::Role::Admin)?;
                api::query_store(&store, request, settings, state.config.query_limits).await.map_err(|e| e.to_string())
            }
            Backend::Process { url, token, client } => {
                let mut r = client
                    .post(format!("{url}{}", api::QUERY_PATH))
                    .header("content-type", "application/json")
                    .timeout(Duration::from_secs(300));
                if let Some(t) = token {
                    r = r.bearer_auth(t);
                }
                let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
                let response = r.body(body).send().await.map_err(|e| format!("{url}: {e}"))?;
                let text = checked(url, response).await?.text().await.map_err(|e| format!("{url}: {e}"))?;
                serde_json::from_str(&text).map_err(|e| format!("{url} answered something else than frames: {e}"))
            }
        }
    }

    pub async fn status(&self) -> Result<Status, String> {
        let response = self.get(api::STATUS_PATH, &[]).await?;
        let text = response.text().await.map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| format!("not a status: {e}"))
    }

    pub async fn export(&self, session: &str, format: ExportFormat, signals: &[ExportSignal]) -> Result<(String, ExportCounts), String> {
        match self {
            Backend::File { state, .. } => {
                let store = state.store().map_err(|e| format!("the store: {e}"))?;
                let (session, signals) = (session.to_string(), signals.to_vec());
                store
                    .read(move |conn| {
                        crate::export::session(conn, &session, format, &signals)
                            .map_err(|e| crate::store::StoreError::Rejected(e.to_string()))
                    })
                    .await
                    .map_err(|e| e.to_string())
            }
            Backend::Process { .. } => {
                let format_name = serde_json::to_value(format).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                let signal_list: Vec<String> =
                    signals.iter().filter_map(|s| serde_json::to_value(s).ok()?.as_str().map(str::to_string)).collect();
                let signal_list = signal_list.join(",");
                let mut q = vec![("session", session), ("format", format_name.as_str())];
                if !signal_list.is_empty() {
                    q.push(("signal", signal_list.as_str()));
                }
                let response = self.get(api::EXPORT_PATH, &q).await?;
                let counts = response
                    .headers()
                    .get("x-export-counts")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| serde_json::from_str(v).ok())
                    .unwrap_or_default();
                Ok((response.text().await.map_err(|e| e.to_string())?, counts))
            }
        }
    }
}

/// The response, or its error message with what to do.
async fn checked(url: &str, response: reqwest::Response) -> Result<reqwest::Response, String> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let message =
        serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["error"].as_str().map(str::to_string)).unwrap_or(body);
    if status == reqwest::StatusCode::NOT_FOUND && message.is_empty() {
        return Err(format!("{url} has no local API: is it gpx_claudecode 0.2 or later, serving OTLP/HTTP there?"));
    }
    Err(format!("{url} answered {status}: {message}"))
}

/// A dashboard-like time range and how to print the result.
#[derive(Debug, clap::Args)]
pub struct RangeArgs {
    /// Start: now-24h, now-7d, a date (2026-11-21), RFC 3339 or ms since the epoch
    #[arg(long, default_value = "now-7d")]
    pub from: String,
    /// End: now, a date (the end of that day), RFC 3339 or ms since the epoch
    #[arg(long, default_value = "now")]
    pub to: String,
    /// IANA time zone for dates in --from/--to and times in the table [default: this machine's]
    #[arg(long)]
    pub timezone: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: output::OutputFormat,
}

/// `query` and `sql`: one query over the range, printed as a table per frame, CSV or the
/// frames' JSON.
pub async fn query(query: serde_json::Value, args: RangeArgs, target: Target) -> Result<(), String> {
    use range::{parse, End};
    let tz = match &args.timezone {
        Some(name) => crate::query::timezone::parse(name)?,
        None => crate::query::timezone::local(),
    };
    let now = chrono::Utc::now();
    let (from, to) = (parse(&args.from, End::Start, tz, now)?, parse(&args.to, End::End, tz, now)?);
    let backend = Backend::connect(&target).await?;
    backend.say_source();
    let request =
        QueryRequest { query, from_ms: from.timestamp_millis(), to_ms: to.timestamp_millis(), interval_ms: 0, max_data_points: 1000 };
    let result = backend.query(request).await;
    backend.close().await;
    let response = result?;
    for notice in response.frames.iter().flat_map(|f| f.notices()) {
        eprintln!("gpx_claudecode: {notice}");
    }
    match args.format {
        output::OutputFormat::Json => println!("{}", serde_json::to_string(&response).map_err(|e| e.to_string())?),
        output::OutputFormat::Csv => {
            for f in &response.frames {
                print!("{}", output::frame_csv(f, tz)?);
            }
        }
        output::OutputFormat::Table => {
            let many = response.frames.len() > 1;
            for f in &response.frames {
                if many {
                    println!("{}", f.schema.name);
                }
                if f.schema.fields.is_empty() {
                    println!("No data.");
                } else {
                    println!("{}", output::frame_table(f, tz));
                }
            }
        }
    }
    Ok(())
}

/// `gpx_claudecode status`: exit 0 when a receiver runs and is healthy, 1 when it is not
/// healthy, 3 when none runs (as `systemctl status` does for a stopped unit).
pub async fn status(target: &Target, json: bool) -> Result<u8, String> {
    let backend = Backend::connect(target).await?;
    let code = match &backend {
        Backend::Process { url, .. } => {
            let s = backend.status().await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"running": true, "endpoint": url, "pid": s.pid, "version": s.version, "ok": s.health.ok, "message": s.health.message, "details": s.health.details})
                );
            } else {
                println!("Receiver: running (pid {}, gpx_claudecode {}), local API at {url}", s.pid, s.version);
                println!("{}: {}", if s.health.ok { "OK" } else { "PROBLEM" }, s.health.message);
            }
            if s.health.ok {
                0
            } else {
                1
            }
        }
        Backend::File { state, path } => {
            let store = state.store().map_err(|e| e.to_string())?;
            let h = store.health().await.map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::json!({"running": false, "file": path, "details": {"store": h}}));
            } else {
                println!("Receiver: not running (nothing holds {}); start one with `gpx_claudecode serve`", path.display());
                println!(
                    "Data: {} events, {} metric points, {} spans, {} sessions (schema v{}); last ingest {}",
                    h.events,
                    h.metric_points,
                    h.spans,
                    h.sessions,
                    h.schema_version,
                    h.last_ingest.as_deref().unwrap_or("never")
                );
            }
            3
        }
    };
    backend.close().await;
    Ok(code)
}

/// `gpx_claudecode export`: to stdout or `--output`; the counts go to stderr.
pub async fn export(
    target: &Target,
    session: &str,
    format: ExportFormat,
    signals: &[ExportSignal],
    output: Option<&Path>,
) -> Result<(), String> {
    let backend = Backend::connect(target).await?;
    backend.say_source();
    let result = backend.export(session, format, signals).await;
    backend.close().await;
    let (text, counts) = result?;
    match output {
        Some(path) => std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        None => {
            use std::io::Write;
            std::io::stdout().write_all(text.as_bytes()).map_err(|e| e.to_string())?;
        }
    }
    eprintln!(
        "gpx_claudecode: exported {} events, {} metric points and {} spans of session {session}",
        counts.events, counts.metric_points, counts.spans
    );
    Ok(())
}
