//! State shared by the Grafana services and the OTLP receivers, and its start-up: the store is
//! opened and the listeners bound in background tasks so the plugin handshake goes out at once.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

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
    /// The open store; empty while it opens or reopens, and after it failed to.
    store: RwLock<Option<Store>>,
    store_error: Mutex<Option<String>>,
    listeners: Mutex<Listeners>,
    /// Bearer tokens the OTLP listeners require (none configured: open).
    pub auth: crate::ingest::auth::IngestAuth,
    /// Days of data kept, from datasources' `retentionDays` (the longest any asks for; 0 = none set).
    pub datasource_retention_days: std::sync::atomic::AtomicU32,
    /// Bytes of data kept, from datasources' `retentionMaxSizeGB` (the largest; 0 = none set).
    pub datasource_retention_max_bytes: std::sync::atomic::AtomicU64,
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
        for problem in &config.ignored {
            tracing::warn!("{problem}; the default applies");
        }
        let auth = crate::ingest::auth::IngestAuth::new(config.ingest_token.clone(), config.data_dir.as_deref().ok());
        Arc::new(AppState {
            config,
            store: RwLock::new(None),
            store_error: Mutex::new(None),
            listeners: Mutex::new(Listeners::default()),
            auth,
            datasource_retention_days: Default::default(),
            datasource_retention_max_bytes: Default::default(),
        })
    }

    /// The open store, or why it is not available (still opening, or failed).
    pub fn store(&self) -> Result<Store, String> {
        if let Some(s) = self.store.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
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
                let options = self.config.store.clone();
                move || Store::open(&dir, &options)
            })
            .await
            {
                Ok(Ok(store)) => {
                    *self.store.write().unwrap_or_else(|p| p.into_inner()) = Some(store.clone());
                    self.set_store_error(None);
                    Ok(store)
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("opening the store panicked: {e}")),
            },
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, "store unavailable");
            self.set_store_error(Some(e.clone()));
        }
        result
    }

    fn set_store_error(&self, error: Option<String>) {
        *self.store_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    /// Opens the store, then keeps it open until shutdown: when DuckDB stops on a fatal error
    /// (a checkpoint that hit a full disk) the store is closed and, once every connection to it
    /// is gone, reopened, retrying every few seconds until that succeeds. Meanwhile exports are
    /// answered 503 / UNAVAILABLE (retryable) and queries say why.
    pub async fn run_store(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        const RETRY: std::time::Duration = std::time::Duration::from_secs(5);
        const MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(60);
        let Ok(mut store) = self.open_store().await else { return };
        let mut opened = tokio::time::Instant::now();
        // Reopening replays the WAL; a disk still full stops the database again at its first
        // checkpoint, so quick repeats wait longer each time (5 s, 10 s, … 60 s).
        let mut pause = std::time::Duration::ZERO;
        loop {
            let reason = tokio::select! {
                reason = store.stopped() => reason,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            pause = if opened.elapsed() < MAX_PAUSE { (pause * 2).clamp(RETRY, MAX_PAUSE) } else { std::time::Duration::ZERO };
            self.store.write().unwrap_or_else(|p| p.into_inner()).take();
            self.set_store_error(Some(format!("reopening the database after a fatal storage error: {reason}")));
            store.close().await;
            let users = store.downgrade();
            drop(store);
            // DuckDB may open the file again only when the stopped instance is fully closed.
            let mut polls = 0u32;
            while users.strong_count() > 0 {
                polls += 1;
                if polls == 1200 {
                    tracing::warn!("queries still hold the stopped database after 60 s; waiting for them");
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            store = loop {
                match self.open_store().await {
                    Ok(s) => break s,
                    Err(_) => tokio::select! {
                        _ = tokio::time::sleep(RETRY) => {}
                        _ = shutdown.wait_for(|s| *s) => return,
                    },
                }
            };
            opened = tokio::time::Instant::now();
            tracing::info!("database reopened after a fatal storage error");
        }
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

    /// Most bytes of data to keep: `GF_PLUGIN_RETENTION_MAX_SIZE`, else the largest a datasource
    /// asks for; 0 keeps everything.
    pub fn retention_max_bytes(&self) -> u64 {
        self.config.retention_max_bytes.unwrap_or_else(|| self.datasource_retention_max_bytes.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Deletes data past the retention in the background, beside ingest: by age once per
    /// interval (an hour by default), by size every minute (measuring it is cheap). The first
    /// passes run a minute after start.
    pub async fn run_retention(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let tick = self.config.retention_interval.min(std::time::Duration::from_secs(60));
        let mut next_age_pass = tokio::time::Instant::now() + tick;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let Ok(store) = self.store() else { continue };
            if tokio::time::Instant::now() >= next_age_pass {
                next_age_pass = tokio::time::Instant::now() + self.config.retention_interval;
                self.age_pass(&store).await;
            }
            self.size_pass(&store).await;
        }
    }

    async fn age_pass(&self, store: &Store) {
        let days = self.retention_days();
        if days == 0 {
            return;
        }
        let now = chrono::Utc::now().timestamp_micros();
        match store.maintain(move |c| crate::store::retention::prune(c, now, days)).await {
            Ok(p) if p.total() > 0 => {
                tracing::info!(days, events = p.events, metric_points = p.metric_points, spans = p.spans, "retention deleted old data")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention pass failed; retrying at the next one"),
        }
    }

    async fn size_pass(&self, store: &Store) {
        let max_bytes = self.retention_max_bytes();
        if max_bytes == 0 {
            return;
        }
        let path = store.path().to_path_buf();
        match store.maintain(move |c| crate::store::retention::trim_to_size(c, &path, max_bytes)).await {
            Ok(Some(t)) => tracing::info!(
                max_bytes,
                bytes_before = t.bytes_before,
                bytes_after = t.bytes_after,
                events = t.pruned.events,
                metric_points = t.pruned.metric_points,
                spans = t.pruned.spans,
                "retention deleted the oldest data to stay within the size limit"
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "size retention pass failed; retrying in a minute"),
        }
    }
}
