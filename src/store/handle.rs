//! The store's lifecycle in one place: opening the file (which replays its WAL), keeping it
//! open, closing and reopening it when DuckDB stops on a fatal error, and letting exports,
//! queries and health checks wait for it while it opens instead of refusing them.
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use super::{Store, StoreError, StoreOptions};

/// Where the store is in its life.
#[derive(Clone)]
enum State {
    /// The first open (WAL replay included) is under way.
    Opening,
    Open(Store),
    /// DuckDB stopped on a fatal error; the file is being closed and reopened.
    Reopening(String),
    /// The last attempt to open failed (retried in the background where `run` was told to).
    Failed(String),
    Closed,
}

/// Why there is no store to use now.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unavailable {
    #[error("the store is still opening after {0:?} (replaying its write-ahead log); try again shortly")]
    Opening(Duration),
    #[error("the store is being reopened after a fatal storage error ({reason}); still not open after {waited:?}")]
    Reopening { reason: String, waited: Duration },
    #[error("{0}")]
    Failed(String),
    #[error("the store is shutting down")]
    Closed,
}

/// A cheap, cloneable handle on the one store of the process.
#[derive(Clone)]
pub struct StoreHandle {
    dir: Result<PathBuf, String>,
    options: StoreOptions,
    state: watch::Sender<State>,
}

/// A test hook: how long to wait before opening, so tests can send exports into the window
/// in which the store is not open yet (`GPX_TEST_STORE_OPEN_DELAY_MS`).
fn test_open_delay() -> Option<Duration> {
    std::env::var("GPX_TEST_STORE_OPEN_DELAY_MS").ok().and_then(|v| v.parse().ok()).map(Duration::from_millis)
}

impl StoreHandle {
    /// A handle whose store is opened by `open` or `run`; `dir` is why there is none when unset.
    pub fn new(dir: Result<PathBuf, String>, options: StoreOptions) -> StoreHandle {
        StoreHandle { dir, options, state: watch::Sender::new(State::Opening) }
    }

    /// The store if it is open now.
    pub fn get(&self) -> Result<Store, Unavailable> {
        match &*self.state.borrow() {
            State::Open(s) => Ok(s.clone()),
            State::Opening => Err(Unavailable::Opening(Duration::ZERO)),
            State::Reopening(reason) => Err(Unavailable::Reopening { reason: reason.clone(), waited: Duration::ZERO }),
            State::Failed(e) => Err(Unavailable::Failed(e.clone())),
            State::Closed => Err(Unavailable::Closed),
        }
    }

    /// The store, waiting up to `within` while it opens or reopens. A store that failed to open
    /// or is closed is reported at once: waiting would not change that.
    pub async fn wait(&self, within: Duration) -> Result<Store, Unavailable> {
        let mut rx = self.state.subscribe();
        let started = tokio::time::Instant::now();
        let settled = tokio::time::timeout(within, rx.wait_for(|s| !matches!(s, State::Opening | State::Reopening(_)))).await;
        match settled {
            Ok(Ok(_)) => self.get(),
            Ok(Err(_)) => Err(Unavailable::Closed),
            Err(_) => Err(match self.get() {
                Err(Unavailable::Opening(_)) => Unavailable::Opening(started.elapsed()),
                Err(Unavailable::Reopening { reason, .. }) => Unavailable::Reopening { reason, waited: started.elapsed() },
                other => return other,
            }),
        }
    }

    /// Whether the store is opening or reopening (callers are waiting rather than refused).
    pub fn is_settling(&self) -> bool {
        matches!(&*self.state.borrow(), State::Opening | State::Reopening(_))
    }

    /// Opens the store (on a blocking thread) and publishes it, or publishes why it failed.
    pub async fn open(&self) -> Result<Store, StoreError> {
        let result = match self.dir.clone() {
            Err(e) => Err(StoreError::NoDataDir(e)),
            Ok(dir) => {
                if let Some(delay) = test_open_delay() {
                    tokio::time::sleep(delay).await;
                }
                let options = self.options.clone();
                tokio::task::spawn_blocking(move || Store::open(&dir, &options))
                    .await
                    .unwrap_or_else(|e| Err(StoreError::Task(format!("opening the store panicked: {e}"))))
            }
        };
        match &result {
            Ok(store) => {
                self.state.send_replace(State::Open(store.clone()));
            }
            // another process holding the file is expected (a terminal command while the plugin
            // runs, the plugin's previous instance shutting down): its callers say what happens next
            Err(e) if e.is_lock_conflict() => {
                tracing::debug!(error = %e, "store held by another process");
                self.state.send_replace(State::Failed(e.to_string()));
            }
            Err(e) => {
                tracing::error!(error = %e, "store unavailable");
                self.state.send_replace(State::Failed(e.to_string()));
            }
        }
        result
    }

    /// Opens the store, then keeps it open until shutdown. When DuckDB stops on a fatal error
    /// (a checkpoint that hit a full disk) the store is closed and, once every connection to it
    /// is gone, reopened, retrying every few seconds until that succeeds; meanwhile exports and
    /// queries wait. With `retry_open`, a first open that fails is retried the same way (plugin
    /// mode: Grafana keeps the process running and an operator may fix the cause); without,
    /// `run` returns the error (standalone `serve` exits with it).
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>, retry_open: bool) -> Result<(), StoreError> {
        const RETRY: Duration = Duration::from_secs(5);
        const MAX_PAUSE: Duration = Duration::from_secs(60);
        // `serve` opens the store before it runs it: a second DuckDB instance on the file would
        // write beside the first, and closing either drops the process's lock on it (POSIX
        // locks belong to the process, and go with the first close)
        let already = match &*self.state.borrow() {
            State::Open(store) => Some(store.clone()),
            _ => None,
        };
        let mut store = loop {
            if let Some(store) = already.clone() {
                break store;
            }
            match self.open().await {
                Ok(s) => break s,
                Err(e) if !retry_open => return Err(e),
                Err(e) => {
                    // another process still holding the file (the plugin's previous instance,
                    // shutting down) lets go in a moment: exports and queries wait for that
                    let pause = if e.is_lock_conflict() {
                        self.state.send_replace(State::Opening);
                        Duration::from_millis(500)
                    } else {
                        RETRY
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.wait_for(|s| *s) => return Ok(()),
                    }
                }
            }
        };
        let mut opened = tokio::time::Instant::now();
        // Reopening replays the WAL; a disk still full stops the database again at its first
        // checkpoint, so quick repeats wait longer each time (5 s, 10 s, … 60 s).
        let mut pause = Duration::ZERO;
        loop {
            let reason = tokio::select! {
                reason = store.stopped() => reason,
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
            };
            pause = if opened.elapsed() < MAX_PAUSE { (pause * 2).clamp(RETRY, MAX_PAUSE) } else { Duration::ZERO };
            self.state.send_replace(State::Reopening(reason));
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
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
            }
            store = loop {
                let reason = match &*self.state.borrow() {
                    State::Reopening(r) | State::Failed(r) => r.clone(),
                    _ => String::new(),
                };
                match self.open().await {
                    Ok(s) => break s,
                    Err(_) => {
                        // still a reopening: exports and queries keep waiting
                        self.state.send_replace(State::Reopening(reason));
                        tokio::select! {
                            _ = tokio::time::sleep(RETRY) => {}
                            _ = shutdown.wait_for(|s| *s) => return Ok(()),
                        }
                    }
                }
            };
            opened = tokio::time::Instant::now();
            tracing::info!("database reopened after a fatal storage error");
        }
    }

    /// Commits what is queued, checkpoints and closes the store; later calls find it closed.
    pub async fn close(&self) {
        let previous = self.state.send_replace(State::Closed);
        if let State::Open(store) = previous {
            store.close().await;
            tracing::info!(path = %store.path().display(), "store closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_get_the_store_once_it_opens_and_failures_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let handle = StoreHandle::new(Ok(dir.path().to_path_buf()), StoreOptions::default());
        assert!(matches!(handle.get(), Err(Unavailable::Opening(_))));
        assert!(matches!(handle.wait(Duration::from_millis(20)).await, Err(Unavailable::Opening(d)) if d >= Duration::from_millis(20)));
        let waiter = tokio::spawn({
            let handle = handle.clone();
            async move { handle.wait(Duration::from_secs(30)).await.map(|s| s.path().to_path_buf()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        handle.open().await.unwrap();
        assert!(waiter.await.unwrap().unwrap().ends_with(super::super::DB_FILE));
        handle.close().await;
        assert_eq!(handle.wait(Duration::from_secs(30)).await.err(), Some(Unavailable::Closed));

        let nowhere = StoreHandle::new(Err("no data directory: set data_dir".into()), StoreOptions::default());
        let shutdown = watch::channel(false).1;
        assert!(nowhere.run(shutdown, false).await.is_err());
        let started = std::time::Instant::now();
        assert_eq!(nowhere.wait(Duration::from_secs(30)).await.err(), Some(Unavailable::Failed("no data directory: set data_dir".into())));
        assert!(started.elapsed() < Duration::from_secs(1), "a failed store is reported at once");
    }
}
