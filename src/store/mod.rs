//! Storage: one DuckDB file holding `events`, `metric_points` and `spans`.
//!
//! One writer thread owns the read-write connection (DuckDB connections are not `Sync`); queries
//! run on a small pool of connections to the same database, on tokio's blocking threads.
pub mod columnar;
pub mod handle;
pub mod live;
pub mod masked;
pub mod retention;
pub mod rollup;
pub mod rows;
pub mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use duckdb::{Config, Connection};
use tokio::sync::{mpsc, oneshot};

pub use handle::{StoreHandle, Unavailable};
pub use writer::WriteOutcome;
use writer::{Command, WriteJob, Writer};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "claudecode.duckdb";

/// DuckDB's buffer pool; its own default (80 % of RAM) would let a Grafana host's plugin grow to
/// gigabytes of cached pages. 128 MB is too little: the sessions query over 10M events runs out.
pub const DEFAULT_MEMORY_LIMIT: &str = "256MB";
/// WAL size that triggers an automatic checkpoint.
pub const DEFAULT_CHECKPOINT_THRESHOLD: &str = "128MB";
/// Free space below which exports are refused before they are stored: a checkpoint writes new
/// blocks before it frees old ones, and one that fails for lack of space stops the database
/// until it is reopened. 256 MiB covers a checkpoint of a full default WAL.
pub const DEFAULT_MIN_FREE_DISK_BYTES: u64 = 256 << 20;

/// How the DuckDB file is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// DuckDB's buffer pool (e.g. "384MB"); bigger query state spills to disk.
    pub memory_limit: String,
    /// WAL size that triggers a checkpoint (e.g. "128MB").
    pub checkpoint_threshold: String,
    /// Exports are refused (retryable) while the data directory's disk has less free space.
    pub min_free_disk_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            memory_limit: DEFAULT_MEMORY_LIMIT.into(),
            checkpoint_threshold: DEFAULT_CHECKPOINT_THRESHOLD.into(),
            min_free_disk_bytes: DEFAULT_MIN_FREE_DISK_BYTES,
        }
    }
}

impl StoreOptions {
    /// Defaults with another memory limit (tests use small ones).
    pub fn with_memory(memory_limit: &str) -> Self {
        StoreOptions { memory_limit: memory_limit.into(), ..StoreOptions::default() }
    }
}

/// Export requests waiting for the writer before senders wait.
const WRITE_QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No data directory could be chosen (the message names the setting).
    #[error("{0}")]
    NoDataDir(String),
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open DuckDB file {path}: {source}")]
    Open { path: PathBuf, source: duckdb::Error },
    #[error("migrating {path} to schema version {version}: {source}")]
    Migrate { path: PathBuf, version: i32, source: duckdb::Error },
    #[error("{path} has schema version {found}, newer than this plugin's {supported}: upgrade the plugin")]
    TooNew { path: PathBuf, found: i32, supported: i32 },
    #[error("storing the batch failed: {0}")]
    Write(String),
    /// Not enough free space to store safely; nothing of the export was stored.
    #[error("{0}")]
    DiskFull(String),
    /// DuckDB stopped after a fatal error (a checkpoint that could not be written); the store is
    /// being reopened.
    #[error("the database stopped after a fatal storage error and is being reopened: {0}")]
    Invalidated(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("overloaded: the writer has been behind for {0:?}; nothing of this export was stored, retry later")]
    Overloaded(std::time::Duration),
    /// Queued, but not committed in time: it will be stored (a re-send is recognised).
    #[error("the writer has been behind for {0:?}: the export is queued and will be stored, but was not committed in time")]
    NotYetCommitted(std::time::Duration),
    #[error("query failed: {0}")]
    Query(#[from] duckdb::Error),
    #[error("query task failed: {0}")]
    Task(String),
    /// The query itself was refused or failed (bad options, SQL errors, sandbox limits).
    #[error("{0}")]
    Rejected(String),
    /// A query failed for a reason of the plugin's own (its SQL, its memory limit).
    #[error("{0}")]
    Failed(String),
}

impl StoreError {
    /// Another process holds the DuckDB file (DuckDB allows one writer process per file).
    pub fn is_lock_conflict(&self) -> bool {
        matches!(self, StoreError::Open { source, .. } if source.to_string().contains("Could not set lock"))
    }
}

/// Counters and failures shared between the writer, readers and health checks.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Wall-clock time of the last committed write, µs since the epoch; 0 = none since start.
    last_ingest_us: AtomicI64,
    /// The last write's failure, while no write has succeeded since: (when, why).
    write_failure: Mutex<Option<(i64, String)>>,
    /// Set once DuckDB reports a fatal error: the database refuses everything until reopened.
    fatal: Mutex<Option<String>>,
    /// Wakes whoever reopens the store when `fatal` is set.
    fatal_notify: tokio::sync::Notify,
}

/// DuckDB's words for a database instance that stopped after a fatal error (for example a
/// checkpoint that hit a full disk); only closing every connection and reopening recovers.
fn is_fatal(message: &str) -> bool {
    message.contains("FATAL Error") || message.contains("database has been invalidated")
}

impl StoreStats {
    /// Records a failed operation; a fatal one marks the database for reopening.
    fn note_failure(&self, message: &str) {
        if is_fatal(message) {
            let mut fatal = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
            if fatal.is_none() {
                tracing::error!(error = %message, "the database stopped after a fatal error; reopening it");
                *fatal = Some(message.to_string());
                self.fatal_notify.notify_one();
            }
        }
    }

    fn fatal(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    dir: PathBuf,
    min_free_disk_bytes: u64,
    schema_version: i32,
    writer: mpsc::Sender<Command>,
    /// Idle reader connections; more are cloned on demand.
    readers: Mutex<Vec<Connection>>,
    /// Queries running at once: two per core. DuckDB already spreads one query over every core;
    /// a dashboard sends all its panels at once, and unbounded they add up to out-of-memory
    /// errors, while one per core left cores idle in single-threaded phases (BENCHMARKS.md).
    running: tokio::sync::Semaphore,
    stats: Arc<StoreStats>,
    /// Committed events for live tails.
    live: live::Live,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What a health check reports about the store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreHealth {
    pub path: String,
    pub schema_version: i32,
    pub events: i64,
    pub metric_points: i64,
    pub spans: i64,
    pub sessions: i64,
    /// RFC 3339; the last commit since start-up, else the newest `received_at` in the file.
    pub last_ingest: Option<String>,
    pub file_bytes: Option<u64>,
    /// Bytes free on the data directory's disk.
    pub free_disk_bytes: Option<u64>,
    /// Why writes are failing (RFC 3339 time and error), while none has succeeded since.
    pub write_failure: Option<(String, String)>,
    /// Hours whose rollups wait to be rebuilt (read from the rows meanwhile).
    pub rollup_dirty_hours: i64,
    /// Live tails (Grafana Live streams) following commits now.
    pub live_tails: usize,
}

impl Store {
    /// Opens (creating if needed) `dir/claudecode.duckdb`, migrates it and starts the writer.
    /// Blocking: call it from a blocking thread.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir { path: dir.to_path_buf(), source })?;
        let path = dir.join(DB_FILE);
        let open_err = |source| StoreError::Open { path: path.clone(), source };
        let config = Config::default()
            // Never fetch extensions at run time: everything needed is built into libduckdb.
            .enable_autoload_extension(false)
            .and_then(|c| c.max_memory(&options.memory_limit))
            // DuckDB checkpoints when the WAL reaches this size. Its default (16 MB) makes a
            // steady stream of exports spend half its time checkpointing; a bigger WAL costs only
            // replay time after a crash (a clean shutdown checkpoints).
            .and_then(|c| c.with("checkpoint_threshold", &options.checkpoint_threshold))
            .map_err(open_err)?;
        let conn = Connection::open_with_flags(&path, config).map_err(open_err)?;
        let schema_version = migrate(&conn, &path)?;
        conn.execute_batch(&masked::views_sql()).map_err(|e| StoreError::Migrate {
            path: path.clone(),
            version: schema_version,
            source: e,
        })?;
        // Raw SQL from dashboards runs on this database: no file, network or extension access
        // for any connection, and no SET/PRAGMA changing that afterwards. One-way switches.
        conn.execute_batch("SET enable_external_access = false; SET lock_configuration = true;").map_err(open_err)?;
        let reader = conn.try_clone().map_err(open_err)?;
        let stats = Arc::new(StoreStats::default());
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let live = live::Live::default();
        let writer = Writer::new(conn, stats.clone(), live.clone()).map_err(open_err)?;
        let handle = std::thread::Builder::new()
            .name("duckdb-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Write(format!("cannot start writer thread: {e}")))?;
        tracing::info!(path = %path.display(), schema_version, "store open");
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                dir: dir.to_path_buf(),
                min_free_disk_bytes: options.min_free_disk_bytes,
                schema_version,
                writer: tx,
                readers: Mutex::new(vec![reader]),
                running: tokio::sync::Semaphore::new(2 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)),
                stats,
                live,
                writer_thread: Mutex::new(Some(handle)),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Committed events as they come (`live`).
    pub fn live(&self) -> &live::Live {
        &self.inner.live
    }

    /// Stores a batch; resolves once it is committed (or failed, in which case nothing of it is).
    /// While the writer's queue is full the batch waits for room until `deadline`, then is
    /// refused unstored (`Overloaded`); queued but not committed by then is `NotYetCommitted`.
    /// Refused at once (`DiskFull`) while the disk has less than the free-space floor.
    pub async fn write(&self, batch: Batch, deadline: tokio::time::Instant) -> Result<WriteOutcome, StoreError> {
        if let Some(e) = self.inner.stats.fatal() {
            return Err(StoreError::Invalidated(e));
        }
        self.check_free_disk()?;
        let started = tokio::time::Instant::now();
        let (ack, done) = oneshot::channel();
        match tokio::time::timeout_at(deadline, self.inner.writer.send(Command::Write(WriteJob { batch, ack }))).await {
            Err(_) => return Err(StoreError::Overloaded(started.elapsed())),
            Ok(sent) => sent.map_err(|_| StoreError::Closed)?,
        }
        match tokio::time::timeout_at(deadline, done).await {
            Err(_) => Err(StoreError::NotYetCommitted(started.elapsed())),
            Ok(acked) => acked.map_err(|_| StoreError::Closed)?,
        }
    }

    /// Runs `f` on a reader connection on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = self.inner.running.acquire().await.map_err(|e| StoreError::Task(e.to_string()))?;
        self.on_reader(f).await
    }

    /// Runs maintenance (retention) on a connection of its own on a blocking thread, outside
    /// the query gate and beside the writer.
    pub async fn maintain<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.on_reader(f).await
    }

    /// Runs `f` on a pooled connection on a blocking thread and returns the connection.
    async fn on_reader<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(e) = inner.stats.fatal() {
                return Err(StoreError::Invalidated(e));
            }
            let conn = inner.take_reader()?;
            // every borrower starts on the tables; a query for a reader without content access
            // points the connection at the masked views itself (`masked::apply`)
            masked::apply(&conn, masked::Access::Content)?;
            let result = f(&conn);
            inner.readers.lock().map(|mut r| r.push(conn)).ok();
            result.map_err(|e| {
                let message = e.to_string();
                if !is_fatal(&message) {
                    return e;
                }
                inner.stats.note_failure(&message);
                StoreError::Invalidated(message)
            })
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    pub async fn health(&self) -> Result<StoreHealth, StoreError> {
        let path = self.inner.path.clone();
        let schema_version = self.inner.schema_version;
        let last_us = self.inner.stats.last_ingest_us.load(Ordering::Relaxed);
        let write_failure = self
            .inner
            .stats
            .write_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .map(|(at, why)| (chrono::DateTime::from_timestamp_micros(at).map(|t| t.to_rfc3339()).unwrap_or_default(), why));
        let free_disk_bytes = free_disk_bytes(&self.inner.dir).ok();
        // exports refused for lack of disk never reach the writer, so they are reported here
        let write_failure = write_failure.or_else(|| {
            let refused = free_disk_bytes.and_then(|free| self.below_floor(free).err());
            refused.map(|e| (chrono::Utc::now().to_rfc3339(), e.to_string()))
        });
        let live_tails = self.inner.live.listeners();
        self.read(move |conn| {
            let (events, metric_points, spans, sessions, newest, rollup_dirty_hours): (i64, i64, i64, i64, Option<i64>, i64) = conn.query_row(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM metric_points), (SELECT count(*) FROM spans),
                        (SELECT count(DISTINCT session_id) FROM (SELECT session_id FROM events UNION ALL SELECT session_id FROM metric_points)),
                        (SELECT epoch_us(max(t)) FROM (SELECT max(received_at) t FROM events UNION ALL SELECT max(received_at) FROM metric_points UNION ALL SELECT max(received_at) FROM spans)),
                        (SELECT count(DISTINCT hour) FROM rollup_dirty)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )?;
            let last = if last_us > 0 { Some(last_us) } else { newest };
            Ok(StoreHealth {
                path: path.display().to_string(),
                schema_version,
                events,
                metric_points,
                spans,
                sessions,
                last_ingest: last.and_then(chrono::DateTime::from_timestamp_micros).map(|t| t.to_rfc3339()),
                file_bytes: std::fs::metadata(&path).ok().map(|m| m.len()),
                free_disk_bytes,
                write_failure,
                rollup_dirty_hours,
                live_tails,
            })
        })
        .await
    }

    /// Resolves once the database has stopped on a fatal error (the store must then be closed
    /// and reopened), with that error.
    pub async fn stopped(&self) -> String {
        loop {
            let notified = self.inner.stats.fatal_notify.notified();
            if let Some(e) = self.inner.stats.fatal() {
                return e;
            }
            notified.await;
        }
    }

    /// A weak handle that tells when every user of this store (and so every DuckDB connection)
    /// is gone: only then may the file be opened again.
    pub fn downgrade(&self) -> std::sync::Weak<impl Sized + Send + Sync> {
        Arc::downgrade(&self.inner)
    }

    fn check_free_disk(&self) -> Result<(), StoreError> {
        if self.inner.min_free_disk_bytes == 0 {
            return Ok(());
        }
        // a disk that cannot be asked is not refused: the write itself reports real failures
        free_disk_bytes(&self.inner.dir).map_or(Ok(()), |free| self.below_floor(free))
    }

    /// `DiskFull` when `free` bytes are under the free-space floor.
    fn below_floor(&self, free: u64) -> Result<(), StoreError> {
        let floor = self.inner.min_free_disk_bytes;
        if free >= floor {
            return Ok(());
        }
        Err(StoreError::DiskFull(format!(
            "disk full: {} free on the disk of {}, below the {} floor (GF_PLUGIN_MIN_FREE_DISK); nothing of this export was stored. \
             Free space, or cap the data with GF_PLUGIN_RETENTION_MAX_SIZE / GF_PLUGIN_RETENTION_DAYS",
            bytesize::ByteSize(free),
            self.inner.dir.display(),
            bytesize::ByteSize(floor)
        )))
    }

    /// Resolves once the writer has committed what was queued before and rebuilt every dirty
    /// rollup hour (normally it waits for an hour to go quiet first).
    pub async fn settle_rollups(&self) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        self.inner.writer.send(Command::SettleRollups(ack)).await.map_err(|_| StoreError::Closed)?;
        done.await.map_err(|_| StoreError::Closed)?
    }

    /// Lets the writer commit what is queued before this call, checkpoint and exit; later
    /// writes fail with `Closed`.
    pub async fn close(&self) {
        let _ = self.inner.writer.send(Command::Close).await;
        let handle = self.inner.writer_thread.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

impl Inner {
    fn take_reader(&self) -> Result<Connection, StoreError> {
        let mut pool = self.readers.lock().map_err(|_| StoreError::Task("reader pool poisoned".into()))?;
        match pool.pop() {
            Some(c) if pool.is_empty() => {
                // keep one idle connection to clone from
                let clone = c.try_clone()?;
                pool.push(c);
                Ok(clone)
            }
            Some(c) => Ok(c),
            None => Err(StoreError::Task("no reader connection".into())),
        }
    }
}

use rows::Batch;

/// Bytes available to this process on the filesystem holding `dir`.
pub fn free_disk_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: c_path is a valid NUL-terminated string; statvfs fills `stat` when it returns 0.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: initialised by the successful call above.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::useless_conversion)] // 32-bit on some targets
    Ok(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

/// Creates the schema or migrates an older file; returns the version now in place.
fn migrate(conn: &Connection, path: &Path) -> Result<i32, StoreError> {
    let err = |version, source| StoreError::Migrate { path: path.to_path_buf(), version, source };
    conn.execute_batch(schema::VERSION_TABLE).map_err(|e| err(0, e))?;
    let current: i32 = conn.query_row("SELECT coalesce(max(version), 0) FROM schema_version", [], |r| r.get(0)).map_err(|e| err(0, e))?;
    if current > schema::SCHEMA_VERSION {
        return Err(StoreError::TooNew { path: path.to_path_buf(), found: current, supported: schema::SCHEMA_VERSION });
    }
    for (i, sql) in schema::migrations().iter().enumerate().skip(current as usize) {
        let version = i as i32 + 1;
        let script = format!("BEGIN TRANSACTION;\n{sql}\nINSERT INTO schema_version (version) VALUES ({version});\nCOMMIT;");
        if let Err(e) = conn.execute_batch(&script) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(err(version, e));
        }
        tracing::info!(version, "schema migrated");
    }
    Ok(schema::SCHEMA_VERSION)
}

#[cfg(test)]
mod upgrade_tests {
    use super::*;

    /// A file written by schema v1 (every attribute in `attributes`, no request keys) opens,
    /// is migrated to the current version, keeps its rows readable with every attribute, and
    /// takes new writes; a file from a newer plugin is refused with a clear error.
    #[tokio::test]
    async fn an_older_file_is_migrated_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            conn.execute_batch(schema::VERSION_TABLE).unwrap();
            conn.execute_batch(&schema::migrations()[0]).unwrap();
            conn.execute_batch(
                r#"INSERT INTO schema_version (version) VALUES (1);
                   INSERT INTO events (time, received_at, event_name, session_id, model, attributes, resource)
                   VALUES (TIMESTAMP '2026-11-01 10:00:00', TIMESTAMP '2026-11-01 10:00:01', 'api_request', 's-old',
                           'claude-opus-4-8', '{"model":"claude-opus-4-8","session.id":"s-old","team":"a"}', '{}');"#,
            )
            .unwrap();
        }
        let store = Store::open(dir.path(), &StoreOptions::with_memory("64MB")).unwrap();
        assert_eq!(store.health().await.unwrap().schema_version, schema::SCHEMA_VERSION);
        let attrs: String = store
            .read(|c| Ok(c.query_row("SELECT attributes FROM events_full WHERE session_id = 's-old'", [], |r| r.get(0))?))
            .await
            .unwrap();
        let attrs: serde_json::Value = serde_json::from_str(&attrs).unwrap();
        assert_eq!(attrs, serde_json::json!({"model": "claude-opus-4-8", "session.id": "s-old", "team": "a"}));
        store
            .write(Batch { dedup_key: Some(7), ..Batch::default() }, tokio::time::Instant::now() + std::time::Duration::from_secs(30))
            .await
            .unwrap();
        let versions: i64 = store.read(|c| Ok(c.query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))?)).await.unwrap();
        assert_eq!(versions, i64::from(schema::SCHEMA_VERSION));
        store.close().await;
        drop(store);

        let newer = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(newer.path().join(DB_FILE)).unwrap();
            conn.execute_batch(schema::VERSION_TABLE).unwrap();
            conn.execute_batch("INSERT INTO schema_version (version) VALUES (99)").unwrap();
        }
        let e = Store::open(newer.path(), &StoreOptions::with_memory("64MB")).err().expect("refused").to_string();
        assert!(e.contains("schema version 99, newer than this plugin's") && e.contains("upgrade the plugin"), "{e}");
    }

    /// A file of schema v3 holds the Claude Code 2.1.332 keys in `attributes` (v4 gave them
    /// typed columns): the migration fills the columns from the JSON, the `*_full` views give
    /// back the same attributes as before, and new rows store those keys once.
    #[tokio::test]
    async fn a_v3_file_gets_the_v4_columns_filled_from_its_json() {
        let dir = tempfile::tempdir().unwrap();
        let attributes = r#"{"agent.name":"general-purpose","agent_id":"a7d","anthropic.custom_base_url":false,"anthropic.provider":"firstParty","cache_creation_1h_tokens":12,"event.name":"api_request","event.sequence":4,"event.timestamp":"2026-12-01T07:09:12.345Z","ttft_ms":"812","vcs.repository.name":"grafana-claudecode"}"#;
        let before = {
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            conn.execute_batch(schema::VERSION_TABLE).unwrap();
            for (i, m) in schema::migrations().iter().take(3).enumerate() {
                conn.execute_batch(m).unwrap();
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", [i as i32 + 1]).unwrap();
            }
            conn.execute(
                "INSERT INTO events (time, received_at, event_name, session_id, event_sequence, attributes, resource)
                 VALUES (TIMESTAMP '2026-12-01 07:09:12.345', now(), 'api_request', 's-v3', 4, ?, '{}')",
                [attributes],
            )
            .unwrap();
            let full: String = conn.query_row("SELECT attributes FROM events_full", [], |r| r.get(0)).unwrap();
            serde_json::from_str::<serde_json::Value>(&full).unwrap()
        };
        let store = Store::open(dir.path(), &StoreOptions::with_memory("64MB")).unwrap();
        let (columns, full): (String, String) = store
            .read(|c| {
                Ok(c.query_row(
                    "SELECT concat_ws('|', agent_name, agent_id, custom_base_url, provider, cache_creation_1h_tokens, event_timestamp, ttft_ms, vcs_repository),
                            (SELECT attributes FROM events_full)
                     FROM events",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(columns, "general-purpose|a7d|false|firstParty|12|2026-12-01 07:09:12.345|812|grafana-claudecode");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&full).unwrap(), before);
        let mut sent: serde_json::Value = serde_json::from_str(attributes).unwrap();
        sent["session.id"] = "s-v3".into();
        assert_eq!(before, sent);
        store.close().await;
    }
}
