//! The process: its settings, the store handle, the ingest handle the receivers get, the OTLP
//! listeners and the background tasks (retention, ingest summaries). The Grafana services hold
//! it; the receivers only its `Ingest`.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::ingest::Ingest;
use crate::store::{Store, StoreHandle};

pub struct AppState {
    pub config: Config,
    /// The store and its lifecycle.
    pub store: StoreHandle,
    /// What the OTLP receivers and the resource route use.
    pub ingest: Arc<Ingest>,
    listeners: Mutex<Listeners>,
    /// Days of data kept, from datasources' `retentionDays` (the longest any asks for; 0 = none set).
    pub datasource_retention_days: std::sync::atomic::AtomicU32,
    /// Bytes of data kept, from datasources' `retentionMaxSizeGB` (the largest; 0 = none set).
    pub datasource_retention_max_bytes: std::sync::atomic::AtomicU64,
    /// The `jsonData` of the datasource Grafana asked last (prices, budgets): the local API's
    /// queries use it, so a terminal report prices as the dashboards do.
    datasource_json: Mutex<Option<serde_json::Value>>,
    /// TLS of both OTLP listeners: none, loaded, or why it cannot be (then they stay closed).
    tls: Result<Option<Arc<crate::ingest::tls::Tls>>, String>,
}

/// Where each OTLP listener is, or why it is not.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Listeners {
    pub grpc: ListenerState,
    pub http: ListenerState,
    /// Both listeners' TLS, when on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::ingest::tls::TlsHealth>,
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

/// Which listener.
#[derive(Debug, Clone, Copy)]
pub enum Receiver {
    Grpc,
    Http,
}

impl Receiver {
    fn name(self) -> &'static str {
        match self {
            Receiver::Grpc => "OTLP/gRPC",
            Receiver::Http => "OTLP/HTTP",
        }
    }
}

impl AppState {
    pub fn new(config: Config) -> Arc<AppState> {
        for problem in &config.ignored {
            tracing::warn!("{problem}; the default applies");
        }
        let store = StoreHandle::new(config.data_dir.clone(), config.store.clone());
        let auth = crate::ingest::auth::IngestAuth::new(config.ingest_token.clone(), config.data_dir.as_deref().ok());
        let ingest = Ingest::with_prices(store.clone(), auth, config.ingest.clone(), config.data_dir.clone().ok());
        let tls = match &config.tls {
            Ok(Some(settings)) => crate::ingest::tls::Tls::load(settings.clone()).map(Some).map_err(|e| format!("TLS: {e}")),
            Ok(None) => Ok(None),
            Err(e) => Err(e.clone()),
        };
        Arc::new(AppState {
            config,
            store,
            ingest,
            listeners: Mutex::new(Listeners::default()),
            datasource_retention_days: Default::default(),
            datasource_retention_max_bytes: Default::default(),
            datasource_json: Mutex::new(None),
            tls,
        })
    }

    /// The listeners' TLS, when configured and loaded.
    fn tls(&self) -> Option<Arc<crate::ingest::tls::Tls>> {
        self.tls.as_ref().ok().cloned().flatten()
    }

    /// The prices in effect for the process: the bundled table with the data directory's
    /// `prices.json` (`gpx_claudecode prices update`) over it, read afresh so an update applies
    /// without a restart.
    pub fn price_table(&self) -> Result<crate::prices::PriceTable, String> {
        crate::prices::PriceTable::load(self.config.data_dir.as_deref().ok())
            .map_err(|e| format!("{e}; fix or remove the file (`gpx_claudecode prices` shows what is in effect)"))
    }

    /// Remembers a datasource's `jsonData` for the local API (see `datasource_json`).
    pub fn learn_datasource_json(&self, json: &serde_json::Value) {
        if let Ok(mut j) = self.datasource_json.lock() {
            *j = Some(json.clone());
        }
    }

    /// What a datasource's settings add to its queries: prices (the data directory's table with
    /// the datasource's `prices` over it), `budgets`, and whether `reader` sees content (its
    /// `contentRole`, else the process's `content_role`). `None`: the datasource Grafana asked
    /// last, else none (standalone). A bad setting is an error that names it, never a silently
    /// different number.
    pub fn query_settings(
        &self,
        json: Option<&serde_json::Value>,
        reader: crate::query::access::Role,
    ) -> Result<crate::query::QuerySettings, String> {
        let json = match json {
            Some(j) => j.clone(),
            None => self.datasource_json.lock().ok().and_then(|j| j.clone()).unwrap_or_default(),
        };
        let mut prices = self.price_table()?;
        if let Some(overrides) = json.get("prices").filter(|v| !v.is_null()) {
            let overrides = serde_json::from_value(overrides.clone())
                .map_err(|e| format!("the datasource's Prices setting is not valid: {e}; fix it in the datasource settings"))?;
            prices.apply(&overrides, "datasource settings").map_err(|e| e.to_string())?;
        }
        let budgets = match json.get("budgets").filter(|v| !v.is_null()) {
            Some(b) => {
                crate::query::plan::parse_budgets(b).map_err(|e| format!("the datasource's {e}; fix it in the datasource settings"))?
            }
            None => Vec::new(),
        };
        let (access, content_role) = self.content_access(Some(&json), reader)?;
        Ok(crate::query::QuerySettings { prices, budgets, rollups: true, access, content_role })
    }

    /// Whether `reader` reads content under a datasource's settings (`None`: the datasource
    /// Grafana asked last), and the lowest role that does: its `contentRole`, else the
    /// process's `content_role`.
    pub fn content_access(
        &self,
        json: Option<&serde_json::Value>,
        reader: crate::query::access::Role,
    ) -> Result<(crate::store::masked::Access, crate::query::access::Role), String> {
        let learned = match json {
            Some(_) => None,
            None => self.datasource_json.lock().ok().and_then(|j| j.clone()),
        };
        let json = json.or(learned.as_ref());
        let setting = match json {
            Some(j) => crate::query::access::content_role_setting(j)?,
            None => None,
        };
        let content_role = setting.unwrap_or(self.config.content_role);
        Ok((crate::query::access::access(reader, content_role), content_role))
    }

    /// The open store, or why it is not available (still opening, or failed).
    pub fn store(&self) -> Result<Store, String> {
        self.store.get().map_err(|e| e.to_string())
    }

    /// Opens the store (tests and the benchmark's generator; servers use `StoreHandle::run`).
    pub async fn open_store(&self) -> Result<Store, String> {
        self.store.open().await.map_err(|e| e.to_string())
    }

    pub fn listeners(&self) -> Listeners {
        let mut listeners = self.listeners.lock().map(|l| l.clone()).unwrap_or_default();
        listeners.tls = self.tls().map(|t| t.health());
        listeners
    }

    fn set_listener(&self, which: Receiver, state: ListenerState) {
        if let Ok(mut l) = self.listeners.lock() {
            match which {
                Receiver::Grpc => l.grpc = state,
                Receiver::Http => l.http = state,
            }
        }
    }

    /// Binds one OTLP listener; a failure is reported (health check, log) and returned.
    pub async fn bind(&self, which: Receiver) -> Result<tokio::net::TcpListener, String> {
        let address = match which {
            Receiver::Grpc => self.config.grpc_listen.clone(),
            Receiver::Http => self.config.http_listen.clone(),
        };
        // TLS was asked for but cannot be served: no plaintext listener in its place
        if let Err(e) = &self.tls {
            tracing::error!(%address, error = %e, receiver = which.name(), "not listening");
            self.set_listener(which, ListenerState::Failed { address: address.clone(), error: e.clone() });
            return Err(format!("{} not listening on {address}: {e}", which.name()));
        }
        match tokio::net::TcpListener::bind(&address).await {
            Ok(l) => {
                let bound = l.local_addr().map(|a: SocketAddr| a.to_string()).unwrap_or(address);
                tracing::info!(address = %bound, receiver = which.name(), "OTLP listener ready");
                if let (Receiver::Http, Ok(dir)) = (which, &self.config.data_dir) {
                    crate::api::announce(dir, &bound);
                }
                self.set_listener(which, ListenerState::Listening { address: bound });
                Ok(l)
            }
            Err(e) => {
                tracing::error!(%address, error = %e, receiver = which.name(), "cannot listen");
                let message = format!("{} cannot listen on {address}: {e}", which.name());
                self.set_listener(which, ListenerState::Failed { address, error: e.to_string() });
                Err(message)
            }
        }
    }

    /// Serves a bound OTLP listener until `shutdown` resolves; a failure is reported and returned.
    pub async fn serve(
        self: Arc<Self>,
        which: Receiver,
        listener: tokio::net::TcpListener,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), String> {
        let bound = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let served = match which {
            Receiver::Grpc => crate::ingest::grpc::serve(self.ingest.clone(), listener, self.tls(), shutdown).await,
            // the local API (terminal commands, scripts) shares the OTLP/HTTP listener
            Receiver::Http => {
                crate::ingest::http::serve(self.ingest.clone(), crate::api::router(self.clone()), listener, self.tls(), shutdown).await
            }
        };
        served.map_err(|e| {
            tracing::error!(address = %bound, error = %e, receiver = which.name(), "listener stopped");
            self.set_listener(which, ListenerState::Failed { address: bound.clone(), error: e.clone() });
            format!("{} on {bound} stopped: {e}", which.name())
        })
    }

    /// Binds and serves both OTLP listeners until `shutdown` resolves. A listener that cannot
    /// bind is reported (health check, log) and the other keeps working (plugin mode).
    pub async fn serve_otlp(self: &Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let one = |which: Receiver| {
            let (this, shutdown) = (self.clone(), shutdown.clone());
            async move {
                if let Ok(listener) = this.bind(which).await {
                    let _ = this.serve(which, listener, shutdown).await;
                }
            }
        };
        tokio::join!(one(Receiver::Grpc), one(Receiver::Http));
    }

    /// Logs what was stored once a minute, until shutdown.
    pub async fn run_ingest_summary(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => self.ingest.stats.log_summary(),
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }
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

/// What CheckHealth and `gpx_claudecode status` say.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Health {
    pub ok: bool,
    pub message: String,
    /// `store` (file, counts, last ingest), `listeners`, `ingest` (refusals, waiting exports).
    pub details: serde_json::Value,
}

impl AppState {
    /// Store, listeners and ingest, for Grafana's "Save & test", `gpx_claudecode status` and
    /// operators. While the store opens (WAL replay) the check waits for it, as queries do.
    pub async fn health(&self) -> Health {
        let listeners = self.listeners();
        let listener_text = |l: &ListenerState| match l {
            ListenerState::Listening { address } => address.clone(),
            ListenerState::Starting => "starting".into(),
            ListenerState::Failed { address, error } => format!("{address} FAILED: {error}"),
        };
        let store = match self.store.wait(self.config.store_wait).await {
            Ok(store) => store.health().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let ingest = self.ingest.stats.health();
        let listeners_json = serde_json::to_value(&listeners).unwrap_or_default();
        let ingest_json = serde_json::to_value(&ingest).unwrap_or_default();
        let refusals = ingest.refusals_text(chrono::Utc::now());
        let waiting = (ingest.waiting_exports > 0).then(|| {
            format!("{} exports ({}) waiting for the store", ingest.waiting_exports, bytesize::ByteSize(ingest.held_bytes as u64))
        });
        match store {
            Ok(h) => {
                let failed =
                    matches!(listeners.grpc, ListenerState::Failed { .. }) || matches!(listeners.http, ListenerState::Failed { .. });
                let mut message = format!(
                "Claude Code data in {} (schema v{}): {} events, {} metric points, {} spans, {} sessions; last ingest {}; OTLP gRPC {}, HTTP {}",
                h.path,
                h.schema_version,
                h.events,
                h.metric_points,
                h.spans,
                h.sessions,
                h.last_ingest.as_deref().unwrap_or("never"),
                listener_text(&listeners.grpc),
                listener_text(&listeners.http),
            );
                message.extend(waiting.map(|w| format!("; {w}")));
                let mut failed = failed;
                if let Some(tls) = &listeners.tls {
                    let expires = tls.certificate_expires.get(..10).unwrap_or(&tls.certificate_expires);
                    message.push_str(&format!(
                        "; TLS: certificate {} expires {expires} ({} days), client certificates {}",
                        tls.certificate_subject, tls.certificate_days_left, tls.client_certificates
                    ));
                    if let Some(e) = &tls.reload_error {
                        message.push_str(&format!("; the TLS files changed but do not load ({e}): the previous ones are served"));
                    }
                    if tls.certificate_days_left < 0 {
                        failed = true;
                        message = format!("The TLS certificate expired on {expires}: clients refuse it; replace it. {message}");
                    }
                }
                // exports refused now (a wrong token: Claude Code itself says nothing) come first
                let refusing = ingest.refusing_now();
                let message = match &refusals {
                    Some(r) if refusing => format!("{r}. {message}"),
                    Some(r) => format!("{message}. {r}"),
                    None => message,
                };
                // writes failing right now (a full disk) matter more than everything else said here
                let (failed, message) = match &h.write_failure {
                    Some((at, why)) => (true, format!("Storing exports fails since {at}: {why}. {message}")),
                    None => (failed || refusing, message),
                };
                let details = serde_json::json!({"store": h, "listeners": listeners_json, "ingest": ingest_json});
                Health { ok: !failed, message, details }
            }
            Err(e) => {
                let mut message = format!("store unavailable: {e}");
                message.extend(waiting.map(|w| format!("; {w}")));
                message.extend(refusals.map(|r| format!(". {r}")));
                Health { ok: false, message, details: serde_json::json!({"listeners": listeners_json, "ingest": ingest_json}) }
            }
        }
    }
}
