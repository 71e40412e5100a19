//! gpx_claudecode: the Claude Code datasource for Grafana.
//!
//! Started by Grafana (env `grafana_plugin_type=datasource`, no arguments) it prints the
//! go-plugin handshake and serves the backend plugin protocol; `gpx_claudecode serve` runs the
//! OTLP receiver and store standalone. In both modes OTLP is received on gRPC and HTTP.
use gpx_claudecode::{app, bench, config, plugin};

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

#[derive(Subcommand)]
enum Command {
    /// Receive OTLP and store it, without Grafana (Ctrl-C or SIGTERM stops cleanly).
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
    let result = match cli.command {
        Some(Command::Serve { data_dir, grpc, http }) => {
            terminal_logs();
            runtime.block_on(standalone(Config::standalone(data_dir, grpc, http)))
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
            tracing::error!(error = %e, "exiting");
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
