//! The single writer: a dedicated thread that owns the read-write DuckDB connection, appends
//! batches with the Appender and commits them, several export requests per transaction when they
//! queue up (group commit). Each request is acknowledged only after its transaction committed.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use duckdb::types::Value;
use duckdb::{params, Connection, OptionalExt};
use tokio::sync::{mpsc, oneshot};

use super::columnar::{Row, TableLayout};
use super::live::Live;
use super::rollup;
use super::rows::{Batch, EventRow, MetricRow, Micros};
use super::{StoreError, StoreStats};
use crate::ingest::transcript::TRANSCRIPT_SCOPE;

/// Most rows committed in one transaction when requests queue up.
const GROUP_COMMIT_ROWS: usize = 32_768;
/// Commits between prunings of old request keys.
const PRUNE_EVERY_COMMITS: u64 = 1000;
/// How long a request key is kept to recognise a re-send.
const RESEND_WINDOW_HOURS: u32 = 24;
/// Rows per Arrow record batch handed to the appender (bounds the memory of one conversion).
const ARROW_CHUNK_ROWS: usize = 8192;

pub(super) struct WriteJob {
    pub batch: Batch,
    pub ack: oneshot::Sender<Result<WriteOutcome, StoreError>>,
}

pub(super) enum Command {
    Write(WriteJob),
    /// Rebuild every dirty rollup hour now, settled or not (the benchmark's loader, tests).
    SettleRollups(oneshot::Sender<Result<(), StoreError>>),
    /// Commit what came before, checkpoint and stop; requests queued behind it are refused.
    Close,
}

/// What a committed request stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub events: usize,
    pub points: usize,
    pub spans: usize,
    /// The request was a re-send of one already stored; nothing was added.
    pub duplicate: bool,
    /// Imported calls already stored (from telemetry or an earlier import), not added again.
    pub known: usize,
    /// Imported calls that replaced an earlier import of the same call with a smaller usage.
    pub replaced: usize,
}

/// A call: session id and request id.
type CallKey = (String, String);

/// What the writer decided about one batch's imported calls.
#[derive(Debug, Default)]
struct ImportPlan {
    /// Per event: store it.
    keep: Vec<bool>,
    known: usize,
    /// Earlier imports to delete, replaced by a fuller copy.
    replace: Vec<CallKey>,
}

/// The last point of a cumulative series: the next point's increment is its difference to it.
#[derive(Debug, Clone, Copy)]
struct SeriesState {
    start_time: Option<Micros>,
    time: Micros,
    value: f64,
}

/// How long an hour must go without writes before its rollups are rebuilt: the hour being
/// written is read from the rows until ingest moves on.
const ROLLUP_SETTLE: Duration = Duration::from_secs(2);
/// Most hours rebuilt in one transaction (the writer answers exports between them).
const ROLLUP_REBUILD_HOURS: usize = 24;
/// How often the dirty list is read again while writes go on, for hours others marked (retention).
const ROLLUP_REREAD: Duration = Duration::from_secs(60);
/// Between exports, rebuilding takes at most this share of the writer's time: a rebuild step
/// that took `t` is followed by `t × (1 / share − 1)` of writes only. Rows written out of time
/// order (history, generated data) make every step a scan of the whole table.
const ROLLUP_SHARE: f64 = 0.2;

/// The writer's view of the dirty rollup hours.
#[derive(Default)]
struct RollupWork {
    /// Hours this writer marked dirty, and when it last wrote into each.
    recent: HashMap<Micros, Instant>,
    /// The dirty list as last read, with this writer's hours since; `None`: read it again.
    dirty: Option<BTreeSet<Micros>>,
    read_at: Option<Instant>,
    /// No rebuild step before this while writes come in (see `ROLLUP_SHARE`).
    not_before: Option<Instant>,
    last_write: Option<Instant>,
}

impl RollupWork {
    fn touched(&mut self, hours: BTreeSet<Micros>) {
        let now = Instant::now();
        self.last_write = Some(now);
        if self.read_at.is_some_and(|t| t.elapsed() > ROLLUP_REREAD) {
            self.dirty = None;
        }
        for h in hours {
            self.recent.insert(h, now);
            if let Some(d) = self.dirty.as_mut() {
                d.insert(h);
            }
        }
    }

    fn pending(&self) -> bool {
        self.dirty.as_ref().is_none_or(|d| !d.is_empty())
    }

    fn settled(&self, hour: Micros) -> bool {
        self.recent.get(&hour).is_none_or(|t| t.elapsed() >= ROLLUP_SETTLE)
    }

    /// How long until the next rebuild step may run: an hour written into settles, and the
    /// last step's share of time has passed.
    fn next_settled_in(&self) -> Duration {
        let settle = self.recent.values().map(|t| ROLLUP_SETTLE.saturating_sub(t.elapsed())).min().unwrap_or(ROLLUP_SETTLE);
        settle.max(self.pause()).max(Duration::from_millis(1))
    }

    /// What is left of the pause after the last rebuild step; none once writes have stopped.
    fn pause(&self) -> Duration {
        if self.last_write.is_none_or(|t| t.elapsed() >= ROLLUP_SETTLE) {
            return Duration::ZERO;
        }
        self.not_before.map(|t| t.saturating_duration_since(Instant::now())).unwrap_or_default()
    }
}

/// Column types of the three tables, read once from the database.
struct Layouts {
    events: TableLayout,
    metric_points: TableLayout,
    spans: TableLayout,
}

pub(super) struct Writer {
    conn: Connection,
    layouts: Layouts,
    series: HashMap<u64, SeriesState>,
    stats: Arc<StoreStats>,
    commits: u64,
    /// Keys of the exports stored within the re-send window, and when: a copy of
    /// `ingest_batches` loaded at start, so recognising a re-send costs no query.
    known_keys: HashMap<u128, Micros>,
    /// Calls stored from transcripts: a telemetry `api_request` of one of them replaces it.
    imported: HashSet<CallKey>,
    /// A test hook (`GPX_TEST_WRITER_PAUSE_FILE`): while this file exists the writer commits
    /// nothing, as a writer stuck behind a slow disk would.
    pause_file: Option<std::path::PathBuf>,
    rollups: RollupWork,
    /// For waiting on the queue with a timeout (rollup hours settling) from this plain thread.
    timer: Option<tokio::runtime::Runtime>,
    /// Where committed telemetry events go to live tails.
    live: Live,
}

impl Writer {
    pub fn new(conn: Connection, stats: Arc<StoreStats>, live: Live) -> duckdb::Result<Self> {
        let layouts = Layouts {
            events: TableLayout::read(&conn, "events")?,
            metric_points: TableLayout::read(&conn, "metric_points")?,
            spans: TableLayout::read(&conn, "spans")?,
        };
        let known_keys = {
            let mut stmt = conn.prepare(&format!(
                "SELECT key, epoch_us(received_at) FROM ingest_batches WHERE received_at >= now()::TIMESTAMP - INTERVAL {RESEND_WINDOW_HOURS} HOUR"
            ))?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i128>(0)? as u128, r.get::<_, Micros>(1)?)))?;
            rows.collect::<duckdb::Result<HashMap<_, _>>>()?
        };
        let imported = {
            let mut stmt = conn.prepare(
                "SELECT session_id, request_id FROM events WHERE scope_name = ? AND session_id IS NOT NULL AND request_id IS NOT NULL",
            )?;
            let rows = stmt.query_map([TRANSCRIPT_SCOPE], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            rows.collect::<duckdb::Result<HashSet<_>>>()?
        };
        let pause_file = std::env::var_os("GPX_TEST_WRITER_PAUSE_FILE").map(std::path::PathBuf::from);
        Ok(Writer {
            conn,
            layouts,
            series: HashMap::new(),
            stats,
            commits: 0,
            known_keys,
            imported,
            pause_file,
            rollups: RollupWork::default(),
            timer: None,
            live,
        })
    }

    /// Runs until closed or every sender is gone, then checkpoints so the file is complete
    /// without its WAL.
    pub fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        self.timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| tracing::warn!(error = %e, "no timer for the writer; it polls while rollup hours settle"))
            .ok();
        let mut closing = false;
        while let Some(command) = self.next_command(&mut rx) {
            let first = match command {
                Command::Write(job) => job,
                Command::SettleRollups(ack) => {
                    let _ = ack.send(self.settle_all_rollups());
                    continue;
                }
                Command::Close => break,
            };
            while self.pause_file.as_deref().is_some_and(std::path::Path::exists) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut jobs = vec![first];
            let mut rows = jobs[0].batch.len();
            let mut settle = None;
            while rows < GROUP_COMMIT_ROWS {
                match rx.try_recv() {
                    Ok(Command::Write(job)) => {
                        rows += job.batch.len();
                        jobs.push(job);
                    }
                    Ok(Command::SettleRollups(ack)) => {
                        settle = Some(ack);
                        break;
                    }
                    Ok(Command::Close) => {
                        closing = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(jobs);
            if let Some(ack) = settle {
                let _ = ack.send(self.settle_all_rollups());
            }
            if closing {
                break;
            }
        }
        rx.close();
        if let Err(e) = self.conn.execute_batch("CHECKPOINT") {
            tracing::warn!(error = %e, "checkpoint at shutdown failed; the WAL is replayed at next start");
        }
        tracing::info!("store writer stopped");
    }

    /// The next command; while rollup hours are dirty, rebuilds settled ones between commands
    /// and otherwise waits for a command no longer than until the next hour settles.
    fn next_command(&mut self, rx: &mut mpsc::Receiver<Command>) -> Option<Command> {
        loop {
            match rx.try_recv() {
                Ok(command) => return Some(command),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if !self.rollups.pending() {
                return rx.blocking_recv();
            }
            let wait = match self.settle_rollups(true) {
                Ok(true) => continue,
                Ok(false) => self.rollups.next_settled_in(),
                Err(e) => {
                    // left dirty: queries read those hours from the rows until a later try
                    tracing::warn!(error = %e, "rebuilding rollups failed; retrying later");
                    self.rollups.dirty = None;
                    ROLLUP_SETTLE
                }
            };
            match &self.timer {
                Some(timer) => {
                    if let Ok(command) = timer.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
                        return command;
                    }
                }
                None => std::thread::sleep(wait.min(Duration::from_millis(5))),
            }
        }
    }

    fn settle_all_rollups(&mut self) -> Result<(), StoreError> {
        self.settle_rollups(false).map(|_| ()).map_err(|e| StoreError::Write(format!("rebuilding rollups: {e}")))
    }

    /// Rebuilds dirty rollup hours: with `one_step`, one run of settled hours (returns whether
    /// it did anything); else all of them.
    fn settle_rollups(&mut self, one_step: bool) -> duckdb::Result<bool> {
        if !one_step {
            self.rollups.dirty = None;
        }
        if one_step && !self.rollups.pause().is_zero() {
            return Ok(false);
        }
        let mut did = false;
        loop {
            let dirty = match self.rollups.dirty.take() {
                Some(d) => d,
                None => {
                    self.rollups.read_at = Some(Instant::now());
                    rollup::dirty_hours(&self.conn)?.into_iter().collect()
                }
            };
            let run: Vec<Micros> = {
                let mut settled = dirty.iter().copied().filter(|h| !one_step || self.rollups.settled(*h));
                let mut run: Vec<Micros> = settled.next().into_iter().collect();
                for h in settled {
                    if run.len() >= ROLLUP_REBUILD_HOURS || run.last().is_some_and(|last| h != last + rollup::HOUR_US) {
                        break;
                    }
                    run.push(h);
                }
                run
            };
            self.rollups.dirty = Some(dirty);
            let (Some(&first), Some(&last)) = (run.first(), run.last()) else {
                if self.rollups.dirty.as_ref().is_some_and(BTreeSet::is_empty) {
                    self.rollups.recent.clear();
                }
                return Ok(did);
            };
            let started = Instant::now();
            rollup::rebuild(&self.conn, first, last + rollup::HOUR_US)?;
            did = true;
            self.rollups.not_before = Some(Instant::now() + started.elapsed().mul_f64(1.0 / ROLLUP_SHARE - 1.0));
            for h in &run {
                self.rollups.recent.remove(h);
                if let Some(d) = self.rollups.dirty.as_mut() {
                    d.remove(h);
                }
            }
            if one_step {
                return Ok(true);
            }
        }
    }

    fn commit_group(&mut self, mut jobs: Vec<WriteJob>) {
        let result = {
            let mut batches: Vec<&mut Batch> = jobs.iter_mut().map(|j| &mut j.batch).collect();
            self.commit(&mut batches)
        };
        match result {
            Ok(results) => {
                self.stats.mark_ingest();
                self.stats.clear_write_failure();
                // new telemetry to live tails before anyone hears it is stored (not re-sends,
                // not imported history)
                if self.live.listeners() > 0 {
                    let fresh: Vec<&EventRow> = jobs
                        .iter()
                        .zip(&results)
                        .filter(|(job, (duplicate, _))| !duplicate && !job.batch.transcript)
                        .flat_map(|(job, _)| &job.batch.events)
                        .collect();
                    self.live.publish(&fresh);
                }
                for (job, (duplicate, plan)) in jobs.into_iter().zip(results) {
                    let outcome = if duplicate {
                        tracing::debug!("identical export re-sent; already stored");
                        WriteOutcome { duplicate: true, ..WriteOutcome::default() }
                    } else {
                        let events = plan.as_ref().map(|p| p.keep.iter().filter(|k| **k).count()).unwrap_or(job.batch.events.len());
                        WriteOutcome {
                            events,
                            points: job.batch.points.len(),
                            spans: job.batch.spans.len(),
                            duplicate: false,
                            known: plan.as_ref().map(|p| p.known).unwrap_or(0),
                            replaced: plan.as_ref().map(|p| p.replace.len()).unwrap_or(0),
                        }
                    };
                    let _ = job.ack.send(Ok(outcome));
                }
                self.commits += 1;
                if self.commits.is_multiple_of(PRUNE_EVERY_COMMITS) {
                    self.prune_request_keys();
                }
            }
            Err(e) if jobs.len() == 1 || super::is_fatal(&e) => {
                tracing::error!(error = %e, "write failed");
                self.stats.note_write_failure(&e);
                for job in jobs {
                    let _ = job.ack.send(Err(write_error(&e)));
                }
            }
            Err(e) => {
                // One bad request must not fail the others it was grouped with: retry one by one.
                tracing::warn!(error = %e, jobs = jobs.len(), "group commit failed; committing requests one by one");
                for job in jobs {
                    self.commit_group(vec![job]);
                }
            }
        }
    }

    /// Stores the batches in one transaction; returns which of them were re-sends of an export
    /// already stored (those add nothing, not even a second copy within this group), and what
    /// became of each imported batch's calls.
    fn commit(&mut self, batches: &mut [&mut Batch]) -> Result<Vec<(bool, Option<ImportPlan>)>, String> {
        let duplicates = self.find_resent(batches);
        // telemetry committed in this same group has the call too, though it is not stored yet
        // (nothing to look at, on the hot path, while no import is stored or under way)
        let imports = !self.imported.is_empty() || batches.iter().any(|b| b.transcript);
        let group_telemetry: HashSet<CallKey> = batches
            .iter()
            .filter(|_| imports)
            .zip(&duplicates)
            .filter(|(b, d)| !b.transcript && !**d)
            .flat_map(|(b, _)| b.events.iter().filter_map(EventRow::call_key))
            .collect();
        let mut in_group: HashMap<CallKey, i64> = HashMap::new();
        let mut plans: Vec<Option<ImportPlan>> = Vec::new();
        for (batch, duplicate) in batches.iter().zip(&duplicates) {
            plans.push(if batch.transcript && !duplicate {
                Some(self.sort_out_imports(&batch.events, &group_telemetry, &mut in_group).map_err(|e| format!("imported calls: {e}"))?)
            } else {
                None
            });
        }
        // telemetry of a call imported earlier: the telemetry row is the one kept
        let superseded: Vec<CallKey> = group_telemetry.iter().filter(|k| self.imported.contains(*k)).cloned().collect();
        // Increments are worked out against a scratch copy of the series state, which replaces
        // the real one only once the transaction has committed.
        let mut pending: HashMap<u64, SeriesState> = HashMap::new();
        for (batch, _) in batches.iter_mut().zip(&duplicates).filter(|(_, d)| !**d) {
            for point in batch.points.iter_mut().filter(|p| p.needs_increment()) {
                point.increment = self.increment(point, &mut pending).map_err(|e| e.to_string())?;
            }
        }
        let l = &self.layouts;
        let fresh: Vec<&Batch> = batches.iter().zip(&duplicates).filter(|(_, d)| !**d).map(|(b, _)| &**b).collect();
        let keep: Vec<&Vec<bool>> = plans
            .iter()
            .zip(&duplicates)
            .filter(|(_, d)| !**d)
            .map(|(p, _)| p.as_ref().map(|p| &p.keep))
            .map(|k| k.unwrap_or(&ALL))
            .collect();
        let replaced: Vec<&CallKey> = plans.iter().flatten().flat_map(|p| &p.replace).chain(&superseded).collect();
        let tx = self.conn.transaction().map_err(|e| e.to_string())?;
        let mut hours: BTreeSet<Micros> = BTreeSet::new();
        if !replaced.is_empty() {
            let mut delete = tx
                .prepare(
                    "DELETE FROM events WHERE scope_name = ? AND event_name = 'api_request' AND session_id = ? AND request_id = ? \
                     RETURNING epoch_us(time)",
                )
                .map_err(|e| e.to_string())?;
            for (session, request) in &replaced {
                let times = delete
                    .query_map(params![TRANSCRIPT_SCOPE, session, request], |r| r.get::<_, Micros>(0))
                    .and_then(|rows| rows.collect::<duckdb::Result<Vec<_>>>())
                    .map_err(|e| format!("replacing an imported call: {e}"))?;
                hours.extend(times.into_iter().map(rollup::hour_of));
            }
        }
        let events = || {
            fresh.iter().zip(&keep).flat_map(|(b, keep)| {
                b.events.iter().enumerate().filter(|(i, _)| keep.is_empty() || keep.get(*i).copied().unwrap_or(true)).map(|(_, r)| r)
            })
        };
        for e in events() {
            let hour = rollup::hour_of(e.time);
            hours.insert(hour);
            if rollup::looked_up(&e.event_name) {
                hours.extend((1..=rollup::LOOKUP_HOURS).flat_map(|i| [hour - i * rollup::HOUR_US, hour + i * rollup::HOUR_US]));
            }
        }
        hours.extend(fresh.iter().flat_map(|b| &b.points).map(|p| rollup::hour_of(p.time)));
        // the rollups of these hours are stale from this commit on: marked in the same transaction
        let newly_dirty: Vec<Micros> = hours.iter().copied().filter(|h| !self.rollups.recent.contains_key(h)).collect();
        if !newly_dirty.is_empty() {
            rollup::mark_dirty(&tx, newly_dirty.iter().copied()).map_err(|e| format!("rollup_dirty: {e}"))?;
        }
        append(&tx, "events", &l.events, events())?;
        append(&tx, "metric_points", &l.metric_points, fresh.iter().flat_map(|b| &b.points))?;
        append(&tx, "spans", &l.spans, fresh.iter().flat_map(|b| &b.spans))?;
        // the keys commit with the rows: a retry after a lost ack finds them whatever happened
        let now_us = chrono::Utc::now().timestamp_micros();
        let now = Value::Timestamp(duckdb::types::TimeUnit::Microsecond, now_us);
        let keys: Vec<u128> = fresh.iter().filter_map(|b| b.dedup_key).collect();
        if !keys.is_empty() {
            let mut appender = tx.appender("ingest_batches").map_err(|e| format!("ingest_batches: {e}"))?;
            for k in &keys {
                appender.append_row(params![Value::HugeInt(*k as i128), now.clone()]).map_err(|e| format!("ingest_batches: {e}"))?;
            }
            appender.flush().map_err(|e| format!("ingest_batches: {e}"))?;
        }
        tx.commit().map_err(|e| e.to_string())?;
        for key in &superseded {
            self.imported.remove(key);
        }
        for (batch, plan) in batches.iter().zip(&plans) {
            if let Some(plan) = plan {
                let stored = batch.events.iter().zip(&plan.keep).filter(|(_, k)| **k).filter_map(|(e, _)| e.call_key());
                self.imported.extend(stored);
            }
        }
        self.series.extend(pending);
        self.rollups.touched(hours);
        // only once committed: a failed transaction leaves its keys unknown, so its retry stores
        self.known_keys.extend(keys.into_iter().map(|k| (k, now_us)));
        Ok(duplicates.into_iter().zip(plans).collect())
    }

    /// Which imported calls to store: not one telemetry has (whichever came first, a call counts
    /// once), nor one imported before unless this copy's usage is larger (it replaces that one).
    /// `in_group` holds the calls taken earlier in the same commit, with their tokens.
    fn sort_out_imports(
        &self,
        events: &[EventRow],
        group_telemetry: &HashSet<CallKey>,
        in_group: &mut HashMap<CallKey, i64>,
    ) -> duckdb::Result<ImportPlan> {
        let mut sessions: Vec<&str> = events.iter().filter_map(|e| e.typed_text("session_id")).collect();
        sessions.sort_unstable();
        sessions.dedup();
        // what the store has of these sessions' calls: telemetry, or imported with its tokens
        let mut telemetry: HashSet<CallKey> = HashSet::new();
        let mut stored: HashMap<CallKey, i64> = HashMap::new();
        for chunk in sessions.chunks(500) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let mut stmt = self.conn.prepare(&format!(
                "SELECT session_id, request_id, scope_name IS NOT DISTINCT FROM ?,
                    coalesce(input_tokens, 0) + coalesce(output_tokens, 0) + coalesce(cache_read_tokens, 0) + coalesce(cache_creation_tokens, 0)
                 FROM events WHERE event_name = 'api_request' AND request_id IS NOT NULL AND session_id IN ({placeholders})"
            ))?;
            let values: Vec<&dyn duckdb::ToSql> =
                std::iter::once(&TRANSCRIPT_SCOPE as &dyn duckdb::ToSql).chain(chunk.iter().map(|s| s as &dyn duckdb::ToSql)).collect();
            let rows = stmt.query_map(values.as_slice(), |r| {
                Ok(((r.get::<_, String>(0)?, r.get::<_, String>(1)?), r.get::<_, bool>(2)?, r.get::<_, i64>(3)?))
            })?;
            for row in rows {
                let (key, imported, tokens) = row?;
                if imported {
                    stored.insert(key, tokens);
                } else {
                    telemetry.insert(key);
                }
            }
        }
        let mut plan = ImportPlan::default();
        for e in events {
            let Some(key) = e.call_key() else {
                plan.keep.push(true);
                continue;
            };
            let tokens = e.tokens();
            // a second copy within one commit is never taken: the first is not stored yet
            let earlier = stored.get(&key).copied();
            let take = !telemetry.contains(&key)
                && !group_telemetry.contains(&key)
                && !in_group.contains_key(&key)
                && earlier.is_none_or(|t| tokens > t);
            if take && earlier.is_some() {
                plan.replace.push(key.clone());
            }
            if take {
                in_group.insert(key, tokens);
            } else {
                plan.known += 1;
            }
            plan.keep.push(take);
        }
        Ok(plan)
    }

    /// Which batches carry a key already stored or seen earlier in the same group.
    fn find_resent(&self, batches: &[&mut Batch]) -> Vec<bool> {
        let mut in_group: HashSet<u128> = HashSet::new();
        batches
            .iter()
            .map(|b| match b.dedup_key {
                Some(k) => self.known_keys.contains_key(&k) || !in_group.insert(k),
                None => false,
            })
            .collect()
    }

    /// Forgets request keys older than `RESEND_WINDOW_HOURS`: exporters retry within minutes.
    fn prune_request_keys(&mut self) {
        let cutoff = chrono::Utc::now().timestamp_micros() - i64::from(RESEND_WINDOW_HOURS) * 3_600_000_000;
        self.known_keys.retain(|_, at| *at >= cutoff);
        let sql = format!("DELETE FROM ingest_batches WHERE received_at < now()::TIMESTAMP - INTERVAL {RESEND_WINDOW_HOURS} HOUR");
        if let Err(e) = self.conn.execute_batch(&sql) {
            tracing::warn!(error = %e, "pruning old request keys");
        }
    }

    /// Increment of a cumulative point: its difference to the series' previous point, or the
    /// whole value when the series is new or restarted (start time changed, or value went down).
    fn increment(&self, point: &MetricRow, pending: &mut HashMap<u64, SeriesState>) -> duckdb::Result<Option<f64>> {
        let Some(value) = point.value else {
            return Ok(None);
        };
        let previous = match pending.get(&point.series_key).or_else(|| self.series.get(&point.series_key)) {
            Some(s) => Some(*s),
            None => self.last_stored(point.series_key)?,
        };
        let current = SeriesState { start_time: point.start_time, time: point.time, value };
        let increment = match previous {
            // An old or repeated point of the same series adds nothing.
            Some(prev) if prev.start_time == point.start_time && point.time <= prev.time => return Ok(Some(0.0)),
            Some(prev) if prev.start_time == point.start_time && (value >= prev.value || point.is_monotonic != Some(true)) => {
                value - prev.value
            }
            _ => value,
        };
        pending.insert(point.series_key, current);
        Ok(Some(increment))
    }

    /// The latest stored point of a cumulative series (after a restart the map is empty).
    fn last_stored(&self, series_key: u64) -> duckdb::Result<Option<SeriesState>> {
        self.conn
            .query_row(
                "SELECT epoch_us(start_time), epoch_us(time), value FROM metric_points
                 WHERE series_key = ? AND temporality = 'cumulative' AND value IS NOT NULL
                 ORDER BY time DESC LIMIT 1",
                params![series_key],
                |r| Ok(SeriesState { start_time: r.get(0)?, time: r.get(1)?, value: r.get(2)? }),
            )
            .optional()
    }
}

/// "Keep every row" for batches that are not imports.
static ALL: Vec<bool> = Vec::new();

/// Appends rows to `table` inside the transaction as Arrow record batches; opens no appender
/// when there are none.
fn append<'r, R: Row + 'r>(conn: &Connection, table: &str, layout: &TableLayout, rows: impl Iterator<Item = &'r R>) -> Result<(), String> {
    let mut rows = rows.peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut appender = conn.appender(table).map_err(|e| format!("{table}: {e}"))?;
    loop {
        let chunk: Vec<_> = rows.by_ref().take(ARROW_CHUNK_ROWS).collect();
        if chunk.is_empty() {
            break;
        }
        let batch = layout.batch(chunk.into_iter()).map_err(|e| format!("{table}: {e}"))?;
        appender.append_record_batch(batch).map_err(|e| format!("{table}: {e}"))?;
    }
    appender.flush().map_err(|e| format!("{table}: {e}"))
}

/// The error a failed commit is answered with: a full disk and a stopped database say so, as
/// both are retryable once space is freed (nothing of the export was stored).
fn write_error(message: &str) -> StoreError {
    if super::is_fatal(message) {
        StoreError::Invalidated(message.to_string())
    } else if message.contains("No space left on device") || message.contains("File too large") || message.contains("Disk quota exceeded") {
        StoreError::DiskFull(format!("disk full: {message}; nothing of this export was stored"))
    } else {
        StoreError::Write(message.to_string())
    }
}

impl StoreStats {
    fn mark_ingest(&self) {
        self.last_ingest_us.store(chrono::Utc::now().timestamp_micros(), Ordering::Relaxed);
    }

    fn note_write_failure(&self, message: &str) {
        self.note_failure(message);
        *self.write_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some((chrono::Utc::now().timestamp_micros(), message.to_string()));
    }

    fn clear_write_failure(&self) {
        let mut failure = self.write_failure.lock().unwrap_or_else(|p| p.into_inner());
        if failure.take().is_some() {
            tracing::info!("writes succeed again");
        }
    }
}
