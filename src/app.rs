//! State shared by the Grafana services and the OTLP receivers, and its start-up: the store is
//! opened and the listeners bound in background tasks so the plugin handshake goes out at once.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use crate::config::Config;
use crate::store::Store;

/// A receiver's serve function: runs on a bound listener until shutdown.
type ServeFn = fn(
    Arc<AppState>,
    tokio::net::TcpListener,
    tokio::sync::watch::Receiver<bool>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

pub struct AppState {
    pub config: Config,
    store: OnceLock<Store>,
    store_error: Mutex<Option<String>>,
    listeners: Mutex<Listeners>,
    /// Bearer tokens the OTLP listeners require (none configured: open).
    pub auth: crate::ingest::auth::IngestAuth,
    /// Days of data kept, from datasources' `retentionDays` (the longest any asks for; 0 = none set).
    pub datasource_retention_days: std::sync::atomic::AtomicU32,
}

/// Where each OTLP listener is, or why it is not.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Listeners {
    pub grpc: ListenerState,
    pub http: ListenerState,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ListenerState {
    #[default]
    Starting,
    Listening {
        address: String,
    },
    Failed {
        address: String,
        error: String,
    },
}

impl AppState {
    pub fn new(config: Config) -> Arc<AppState> {
        let auth = crate::ingest::auth::IngestAuth::new(config.ingest_token.clone(), config.data_dir.as_deref().ok());
        Arc::new(AppState {
            config,
            store: OnceLock::new(),
            store_error: Mutex::new(None),
            listeners: Mutex::new(Listeners::default()),
            auth,
            datasource_retention_days: Default::default(),
        })
    }

    /// The open store, or why it is not available (still opening, or failed).
    pub fn store(&self) -> Result<Store, String> {
        if let Some(s) = self.store.get() {
            return Ok(s.clone());
        }
        match self.store_error.lock().ok().and_then(|e| e.clone()) {
            Some(e) => Err(e),
            None => Err("the store is still opening".into()),
        }
    }

    pub fn listeners(&self) -> Listeners {
        self.listeners.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn set_listener(&self, which: fn(&mut Listeners) -> &mut ListenerState, state: ListenerState) {
        if let Ok(mut l) = self.listeners.lock() {
            *which(&mut l) = state;
        }
    }

    /// Opens the store on a blocking thread; records the error for health checks on failure.
    pub async fn open_store(self: &Arc<Self>) -> Result<Store, String> {
        let result = match self.config.data_dir.clone() {
            // recorded like any other failure, so health checks say why instead of "still opening"
            Err(e) => Err(e),
            Ok(dir) => match tokio::task::spawn_blocking({
                let memory_limit = self.config.memory_limit.clone();
                move || Store::open(&dir, &memory_limit)
            })
            .await
            {
                Ok(Ok(store)) => Ok(self.store.get_or_init(|| store).clone()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("opening the store panicked: {e}")),
            },
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, "store unavailable");
            if let Ok(mut slot) = self.store_error.lock() {
                *slot = Some(e.clone());
            }
        }
        result
    }

    /// Binds both OTLP listeners and serves them until `shutdown` resolves. A listener that
    /// cannot bind is reported (health check, log) and the rest keeps working.
    pub async fn serve_otlp(self: &Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let grpc = self.clone().serve_listener(
            self.config.grpc_listen.clone(),
            |l| &mut l.grpc,
            shutdown.clone(),
            |state, listener, shutdown| Box::pin(crate::ingest::grpc::serve(state, listener, shutdown)),
        );
        let http = self.clone().serve_listener(
            self.config.http_listen.clone(),
            |l| &mut l.http,
            shutdown,
            |state, listener, shutdown| Box::pin(crate::ingest::http::serve(state, listener, shutdown)),
        );
        tokio::join!(grpc, http);
    }

    async fn serve_listener(
        self: Arc<Self>,
        address: String,
        which: fn(&mut Listeners) -> &mut ListenerState,
        shutdown: tokio::sync::watch::Receiver<bool>,
        serve: ServeFn,
    ) {
        let listener = match tokio::net::TcpListener::bind(&address).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%address, error = %e, "cannot listen");
                self.set_listener(which, ListenerState::Failed { address, error: e.to_string() });
                return;
            }
        };
        let bound = listener.local_addr().map(|a: SocketAddr| a.to_string()).unwrap_or(address.clone());
        tracing::info!(address = %bound, "OTLP listener ready");
        self.set_listener(which, ListenerState::Listening { address: bound.clone() });
        if let Err(e) = serve(self.clone(), listener, shutdown).await {
            tracing::error!(address = %bound, error = %e, "listener stopped");
            self.set_listener(which, ListenerState::Failed { address: bound, error: e });
        }
    }
}

/// Accepted connections with TCP_NODELAY: without it every small gRPC response waits for the
/// peer's delayed ACK (~40 ms per query or export on Linux).
pub fn nodelay_incoming(listener: tokio::net::TcpListener) -> Result<tonic::transport::server::TcpIncoming, String> {
    tonic::transport::server::TcpIncoming::from_listener(listener, true, None).map_err(|e| format!("listener: {e}"))
}

impl AppState {
    /// Days of data to keep: `GF_PLUGIN_RETENTION_DAYS`, else the longest retention a datasource
    /// asks for; 0 keeps everything.
    pub fn retention_days(&self) -> u32 {
        self.config.retention_days.unwrap_or_else(|| self.datasource_retention_days.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Deletes data past the retention once an hour (first a minute after start), beside ingest.
    pub async fn run_retention(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut wait = self.config.retention_interval.min(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            wait = self.config.retention_interval;
            let days = self.retention_days();
            let Ok(store) = self.store() else { continue };
            if days == 0 {
                continue;
            }
            let now = chrono::Utc::now().timestamp_micros();
            match store.maintain(move |c| crate::store::retention::prune(c, now, days)).await {
                Ok(p) if p.total() > 0 => {
                    tracing::info!(days, events = p.events, metric_points = p.metric_points, spans = p.spans, "retention deleted old data")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention pass failed; retrying next hour"),
            }
        }
    }
}
