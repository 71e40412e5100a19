//! gpx_claudecode: the Claude Code datasource for Grafana.
//!
//! Started by Grafana (env `grafana_plugin_type=datasource`, no arguments) it prints the
//! go-plugin handshake and serves the backend plugin protocol; `gpx_claudecode serve` runs the
//! OTLP receiver and store standalone. In both modes OTLP is received on gRPC and HTTP.
use gpx_claudecode::{app, bench, cli, config, export, import, plugin, prices, statusline};

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

/// The static (musl) binaries: mimalloc, which also replaces malloc for DuckDB (Cargo.toml).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tokio::sync::watch;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

use app::AppState;
use config::Config;

#[derive(Parser)]
#[command(
    version,
    about = "Claude Code datasource for Grafana: OTLP receiver, DuckDB store and Grafana backend plugin.\n\
Grafana starts it without arguments (env grafana_plugin_type=datasource); `serve` runs it standalone."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// TLS on both OTLP listeners (flags replace the environment's settings when any is given).
#[derive(clap::Args, Debug)]
struct TlsArgs {
    /// Server certificate chain, PEM [env: GF_PLUGIN_TLS_CERT_FILE]
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,
    /// Its private key, PEM [env: GF_PLUGIN_TLS_KEY_FILE]
    #[arg(long)]
    tls_key_file: Option<PathBuf>,
    /// CA certificates that client certificates must chain to: makes one mandatory (mTLS) [env: GF_PLUGIN_TLS_CLIENT_CA_FILE]
    #[arg(long)]
    tls_client_ca_file: Option<PathBuf>,
    /// Client certificate subjects allowed, `;`-separated: common names or whole RFC 4514 subjects [env: GF_PLUGIN_TLS_CLIENT_SUBJECTS]
    #[arg(long)]
    tls_client_subjects: Option<String>,
}

impl TlsArgs {
    fn given(&self) -> bool {
        self.tls_cert_file.is_some()
            || self.tls_key_file.is_some()
            || self.tls_client_ca_file.is_some()
            || self.tls_client_subjects.is_some()
    }
}

#[derive(Subcommand)]
enum PricesAction {
    /// Merge the Claude models of a LiteLLM model_prices_and_context_window.json into the data
    /// directory's prices.json
    Update { file: PathBuf },
}

#[derive(Subcommand)]
enum Command {
    /// Receive OTLP and store it, without Grafana (Ctrl-C or SIGTERM stops cleanly).
    #[command(after_help = "Examples:
  gpx_claudecode serve
  gpx_claudecode serve --data-dir /var/lib/claude-code --grpc 0.0.0.0:4317 --http 0.0.0.0:4318")]
    Serve {
        /// Directory of the DuckDB file [env: GF_PLUGIN_DATA_DIR] [default: ./data]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// OTLP/gRPC listen address [env: GF_PLUGIN_OTLP_GRPC_LISTEN] [default: 127.0.0.1:4317]
        #[arg(long)]
        grpc: Option<String>,
        /// OTLP/HTTP listen address [env: GF_PLUGIN_OTLP_HTTP_LISTEN] [default: 127.0.0.1:4318]
        #[arg(long)]
        http: Option<String>,
        #[command(flatten)]
        tls: TlsArgs,
        /// Lowest Grafana role that reads prompts, responses, tool details, commands, file paths
        /// and error messages: Viewer, Editor or Admin; terminal commands asking this process read
        /// as Viewers [env: GF_PLUGIN_CONTENT_ROLE] [default: Admin]
        #[arg(long, value_parser = gpx_claudecode::query::access::Role::parse_setting)]
        content_role: Option<gpx_claudecode::query::access::Role>,
    },
    /// Import Claude Code's local transcripts (history from before telemetry) into the store.
    Import(import::ImportArgs),
    /// Print the list prices in effect; `prices update FILE` takes a LiteLLM price file.
    #[command(after_help = "Examples:
  gpx_claudecode prices
  gpx_claudecode prices update model_prices_and_context_window.json")]
    Prices {
        #[command(subcommand)]
        action: Option<PricesAction>,
        /// Data directory (its prices.json overrides the bundled table) [env: GF_PLUGIN_DATA_DIR] [default: ./data]
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Claude Code's statusLine command: prints today's cost and the open 5-hour window, and
    /// records the plan's rate limits from the status JSON on stdin.
    #[command(after_help = "Example, in ~/.claude/settings.json:
  \"statusLine\": {\"type\": \"command\", \"command\": \"gpx_claudecode statusline\"}")]
    Statusline {
        /// Data directory [env: GF_PLUGIN_DATA_DIR] [default: ./data]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The running receiver, used when another process holds the DuckDB file [default: the one
        /// the data directory names, else http://127.0.0.1:4318]
        #[arg(long)]
        endpoint: Option<String>,
        /// Ingest token of the running receiver
        #[arg(long, env = "GF_PLUGIN_INGEST_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Usage reports in the terminal: daily, weekly, monthly, sessions, models, projects, tools, windows.
    Report(cli::report::ReportArgs),
    /// Run any typed query of the catalog (the README lists them) over a dashboard-like range.
    #[command(after_help = "Examples:
  gpx_claudecode query '{\"queryType\": \"stat\", \"measure\": \"cost\"}' --from now-7d
  gpx_claudecode query '{\"queryType\": \"sessions\", \"limit\": 20}' --format csv
  gpx_claudecode query '{\"queryType\": \"breakdown\", \"measure\": \"tokens\", \"groupBy\": \"model\", \"format\": \"table\"}' --format json")]
    Query {
        /// The query JSON, as a panel stores it
        query: String,
        #[command(flatten)]
        range: cli::RangeArgs,
        #[command(flatten)]
        target: cli::Target,
    },
    /// Run read-only SQL on the tables events, metric_points and spans (the datasource's sandbox and macros).
    #[command(after_help = "Examples:
  gpx_claudecode sql \"SELECT model, sum(cost_usd) AS cost_usd FROM events WHERE \\$__timeFilter(time) AND event_name = 'api_request' GROUP BY 1\"
  gpx_claudecode sql 'SELECT event_name, count(*) AS n FROM events GROUP BY 1 ORDER BY 2 DESC' --format csv")]
    Sql {
        /// One SELECT (or WITH … SELECT); $__timeFilter(time), $__timeGroup(time, 1h) and the other macros work
        sql: String,
        #[command(flatten)]
        range: cli::RangeArgs,
        #[command(flatten)]
        target: cli::Target,
    },
    /// Export one session's events, metric points and spans (OTLP/JSON re-imports into any OTLP receiver).
    #[command(after_help = "Examples:
  gpx_claudecode export --session 4a513f9f-1086-4ca5-adf4-9dcd94af912f > session.jsonl
  gpx_claudecode export --session ID --signal logs | curl -H 'content-type: application/json' --data-binary @- http://127.0.0.1:4318/v1/logs
  gpx_claudecode export --session ID --format csv --output session.csv")]
    Export {
        /// The session id (`gpx_claudecode report sessions` lists them)
        #[arg(long)]
        session: String,
        #[arg(long, value_enum, default_value_t)]
        format: export::ExportFormat,
        /// Only these signals (repeatable); otlp-json writes one line per signal
        #[arg(long, value_enum)]
        signal: Vec<export::ExportSignal>,
        /// Write to this file instead of stdout
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        target: cli::Target,
    },
    /// Whether a receiver runs and where, the data file, counts, last ingest and refusals (what CheckHealth says).
    /// Exit status 0: running and healthy; 1: running with a problem; 3: not running.
    #[command(after_help = "Examples:
  gpx_claudecode status
  gpx_claudecode status --json --data-dir /var/lib/grafana/plugin-data")]
    Status {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: cli::Target,
    },
    /// Benchmark ingest and queries against DuckDB's own speed; prints Markdown tables (see BENCHMARKS.md).
    Bench(bench::BenchArgs),
}

fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,h2=warn,tower=warn,hyper=warn"))
}

/// Human-readable logs on stderr; colours only when stderr is a terminal (not in a log file).
fn terminal_logs() {
    use std::io::IsTerminal;
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry().with(layer).with(env_filter()).init();
}

/// Terminal commands log only warnings and errors unless RUST_LOG says otherwise.
fn terminal_logs_quiet() {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry().with(layer).with(filter).init();
}

fn data_dir_or_default(data_dir: Option<PathBuf>) -> PathBuf {
    Config::standalone(data_dir, None, None).data_dir.unwrap_or_else(|_| PathBuf::from("data"))
}

fn prices_command(action: Option<PricesAction>, data_dir: Option<PathBuf>) -> Result<(), String> {
    let dir = data_dir_or_default(data_dir);
    let mut table = prices::PriceTable::load(Some(&dir)).map_err(|e| e.to_string())?;
    if let Some(PricesAction::Update { file }) = action {
        let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let changed = table.update_from_litellm(&text, &file.display().to_string()).map_err(|e| e.to_string())?;
        let path = table.save(&dir).map_err(|e| e.to_string())?;
        println!("{} models added or changed, written to {}: {}", changed.len(), path.display(), changed.join(", "));
        return Ok(());
    }
    println!("prices as of {} ({}), USD per million tokens", table.as_of, table.sources.join(", then "));
    println!(
        "{:<28} {:>8} {:>8} {:>10} {:>9} {:>9}  long context (>200k) / fast",
        "model", "input", "output", "cache read", "write 5m", "write 1h"
    );
    for (model, p) in &table.models {
        let long = p.above_200k.map(|l| format!("{}/{}", l.input, l.output)).unwrap_or_else(|| "-".into());
        let fast = p.fast_multiplier.map(|f| format!("{f}x")).unwrap_or_else(|| "-".into());
        let b = p.base;
        println!(
            "{model:<28} {:>8} {:>8} {:>10} {:>9} {:>9}  {long} / {fast}",
            b.input, b.output, b.cache_read, b.cache_write_5m, b.cache_write_1h
        );
    }
    Ok(())
}

/// Reads Claude Code's status from stdin, records it and prints the line. Whatever fails, a
/// line is printed (from the status alone) so Claude Code's status bar never goes blank; the
/// cause goes to stderr.
async fn statusline_command(data_dir: Option<PathBuf>, endpoint: Option<String>, token: Option<String>) -> Result<(), String> {
    use std::io::Read;
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read the status from stdin: {e}"))?;
    let input: statusline::StatusInput = serde_json::from_str(&text).map_err(|e| format!("stdin is not Claude Code's status JSON: {e}"))?;
    let now = chrono::Utc::now();
    let status = match statusline_status(data_dir, endpoint, token, &text, &input, now).await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("gpx_claudecode statusline: {e}");
            None
        }
    };
    println!("{}", statusline::line(&input, status.as_ref(), now));
    Ok(())
}

async fn statusline_status(
    data_dir: Option<PathBuf>,
    endpoint: Option<String>,
    token: Option<String>,
    text: &str,
    input: &statusline::StatusInput,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<statusline::StoreStatus, String> {
    let config = Config::standalone(data_dir, None, None);
    let dir = config.data_dir.clone().unwrap_or_else(|_| PathBuf::from("data"));
    let state = AppState::new(config);
    match state.store.open().await {
        Ok(_) => {
            let status = statusline::record(&state.ingest, input, now).await;
            state.store.close().await;
            status
        }
        Err(e) if e.is_lock_conflict() => {
            let endpoint = endpoint.or_else(|| gpx_claudecode::api::discover(&dir)).unwrap_or_else(|| "http://127.0.0.1:4318".into());
            let url = format!("{}{}", endpoint.trim_end_matches('/'), gpx_claudecode::ingest::http::STATUSLINE_PATH);
            let mut request = reqwest::Client::new().post(&url).header("content-type", "application/json").body(text.to_string());
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.timeout(std::time::Duration::from_secs(2)).send().await.map_err(|e| format!("{url}: {e}"))?;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(format!("{url} answered {status}: {body}"));
            }
            serde_json::from_str(&body).map_err(|e| format!("{url} answered {body:?}: {e}"))
        }
        Err(e) => Err(format!("cannot open the store: {e}")),
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    file_size_limit_is_an_error();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gpx_claudecode: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // servers log why they stop; terminal commands only print it
    let logs_errors = matches!(cli.command, None | Some(Command::Serve { .. }) | Some(Command::Bench(_)));
    let result = match cli.command {
        Some(Command::Serve { data_dir, grpc, http, tls, content_role }) => {
            terminal_logs();
            let mut config = Config::standalone(data_dir, grpc, http);
            if let Some(role) = content_role {
                config.content_role = role;
            }
            if tls.given() {
                config.tls = config::tls_settings(tls.tls_cert_file, tls.tls_key_file, tls.tls_client_ca_file, tls.tls_client_subjects);
            }
            runtime.block_on(standalone(config))
        }
        Some(Command::Import(args)) => {
            terminal_logs_quiet();
            runtime.block_on(import::run(args))
        }
        Some(Command::Prices { action, data_dir }) => prices_command(action, data_dir),
        Some(Command::Statusline { data_dir, endpoint, token }) => {
            terminal_logs_quiet();
            runtime.block_on(statusline_command(data_dir, endpoint, token))
        }
        Some(Command::Report(args)) => {
            terminal_logs_quiet();
            runtime.block_on(cli::report::run(args))
        }
        Some(Command::Query { query, range, target }) => {
            terminal_logs_quiet();
            match serde_json::from_str::<serde_json::Value>(&query) {
                Ok(q) => runtime.block_on(cli::query(q, range, target)),
                Err(e) => Err(format!("the query is not JSON ({e}): quote it, e.g. '{{\"queryType\": \"stat\", \"measure\": \"cost\"}}'")),
            }
        }
        Some(Command::Sql { sql, range, target }) => {
            terminal_logs_quiet();
            let q = serde_json::json!({"queryType": "sql", "format": "table", "rawSql": sql});
            runtime.block_on(cli::query(q, range, target))
        }
        Some(Command::Export { session, format, signal, output, target }) => {
            terminal_logs_quiet();
            runtime.block_on(cli::export(&target, &session, format, &signal, output.as_deref()))
        }
        Some(Command::Status { json, target }) => {
            terminal_logs_quiet();
            match runtime.block_on(cli::status(&target, json)) {
                Ok(code) => return ExitCode::from(code),
                Err(e) => Err(e),
            }
        }
        Some(Command::Bench(args)) => {
            terminal_logs();
            runtime.block_on(bench::run(args))
        }
        None if std::env::var_os("grafana_plugin_type").is_some() => {
            // Grafana's log format on stderr; stdout carries only the handshake line.
            tracing_subscriber::registry().with(grafana_plugin_sdk::backend::layer()).with(env_filter()).init();
            runtime.block_on(plugin_mode())
        }
        None => {
            Err("not started by Grafana (grafana_plugin_type is not set): run `gpx_claudecode serve` to run standalone, or --help".into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if logs_errors {
                tracing::error!(error = %e, "exiting");
            }
            eprintln!("gpx_claudecode: {e}");
            ExitCode::FAILURE
        }
    }
}

/// glibc gives every thread that allocates concurrently its own heap (up to 8 per core); freed
/// memory in them stays resident. Two arenas keep the plugin's RSS flat under load at no
/// measurable speed cost (BENCHMARKS.md). `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// A file-size limit (`ulimit -f`) normally kills the process with SIGXFSZ in the middle of a
/// write; ignored, the write fails with EFBIG instead and is reported like a full disk.
fn file_size_limit_is_an_error() {
    #[cfg(unix)]
    // SAFETY: sets the disposition of one signal to "ignore" before any other thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Resolves the shutdown channel on SIGTERM or SIGINT. The handlers are installed before this
/// returns, so a signal right after it never takes the default (killing) action.
fn spawn_signal_handler(tx: watch::Sender<bool>) {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    tokio::spawn(async move {
        #[cfg(unix)]
        let (term, interrupt) = (
            async {
                match term.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            },
            async {
                match interrupt.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            },
        );
        #[cfg(not(unix))]
        let (term, interrupt) = (std::future::pending::<Option<()>>(), async { tokio::signal::ctrl_c().await.ok() });
        tokio::select! {
            _ = interrupt => tracing::info!("interrupted, shutting down"),
            _ = term => tracing::info!("terminated, shutting down"),
        }
        let _ = tx.send(true);
    });
}

async fn plugin_mode() -> Result<(), String> {
    // Handshake first: Grafana waits for it, so everything slow happens in spawned tasks.
    let listener = grafana_plugin_sdk::backend::initialize().await.map_err(|e| format!("cannot bind the plugin gRPC listener: {e}"))?;
    let state = AppState::new(Config::from_plugin_env());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    spawn_signal_handler(shutdown_tx);
    // Grafana keeps the process running whatever fails: what cannot open or bind is retried or
    // reported by CheckHealth.
    let store = state.store.clone();
    let store_shutdown = shutdown_rx.clone();
    tokio::spawn(async move { store.run(store_shutdown, true).await });
    start_background(&state, shutdown_rx.clone());
    let receivers = {
        let (state, shutdown) = (state.clone(), shutdown_rx.clone());
        tokio::spawn(async move { state.serve_otlp(shutdown).await })
    };
    let plugin = plugin::ClaudeCodePlugin { state: state.clone() };
    let served = within_grace(plugin::serve(plugin, listener, shutdown_rx.clone()), shutdown_rx.clone()).await;
    within_grace(receivers, shutdown_rx).await;
    state.store.close().await;
    match served {
        Some(Err(e)) => Err(format!("plugin gRPC server failed: {e}")),
        _ => Ok(()),
    }
}

/// How long servers may drain their connections after a shutdown signal before the store is
/// closed regardless (an idle HTTP/2 client can hold a graceful shutdown open forever).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs `fut` to completion, or until `SHUTDOWN_GRACE` after shutdown was requested.
async fn within_grace<F: std::future::Future>(fut: F, mut shutdown: watch::Receiver<bool>) -> Option<F::Output> {
    tokio::select! {
        out = fut => Some(out),
        _ = async {
            let _ = shutdown.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("connections still open after the shutdown grace period; closing anyway");
            None
        }
    }
}

/// Standalone: both listeners must bind and the store must open, else `serve` ends with the
/// cause (a supervisor or the user sees it at once, rather than a receiver that refuses
/// everything); the same when a listener stops while serving.
async fn standalone(config: Config) -> Result<(), String> {
    // first: a SIGTERM that comes while the store opens must stop cleanly, not kill
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    spawn_signal_handler(shutdown_tx.clone());
    let state = AppState::new(config);
    let grpc = state.bind(app::Receiver::Grpc).await?;
    let http = state.bind(app::Receiver::Http).await?;
    state.store.open().await.map_err(|e| format!("cannot open the store: {e}"))?;
    let store = state.store.clone();
    let store_shutdown = shutdown_rx.clone();
    tokio::spawn(async move { store.run(store_shutdown, false).await });
    start_background(&state, shutdown_rx.clone());
    let serve = |which, listener| {
        let (state, shutdown, stop) = (state.clone(), shutdown_rx.clone(), shutdown_tx.clone());
        async move {
            let result = state.serve(which, listener, shutdown).await;
            // one receiver gone ends the process
            let _ = stop.send(true);
            result
        }
    };
    let both = async { tokio::join!(serve(app::Receiver::Grpc, grpc), serve(app::Receiver::Http, http)) };
    let served = within_grace(both, shutdown_rx.clone()).await;
    state.store.close().await;
    match served {
        Some((Err(e), _) | (_, Err(e))) => Err(e),
        _ => Ok(()),
    }
}

/// Retention and the ingest summary, until shutdown.
fn start_background(state: &Arc<AppState>, shutdown: watch::Receiver<bool>) {
    tokio::spawn(state.clone().run_retention(shutdown.clone()));
    tokio::spawn(state.clone().run_ingest_summary(shutdown));
}
