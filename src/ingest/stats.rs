//! What came in, for operators: exports stored per signal (the first one after start logged at
//! once, then a summary a minute), exports held waiting for the store, and every refused export
//! by reason — when, from whom, over what — logged at most once per reason every few seconds and
//! reported by CheckHealth. A refused export is often the only sign of a misconfigured client:
//! Claude Code itself says nothing when its exports fail.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::decode::Signal;

/// How an export arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Grpc,
    Http,
    /// Grafana's resource route of a datasource (`/api/datasources/uid/…/resources/v1/…`).
    GrafanaResource,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "gRPC",
            Protocol::Http => "HTTP",
            Protocol::GrafanaResource => "Grafana's resource route",
        }
    }
}

/// Who sent an export, and how.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub protocol: Protocol,
    pub peer: Option<SocketAddr>,
}

/// Why an export was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    MissingToken,
    InvalidToken,
    MalformedAuthorization,
    /// Not an OTLP request: wrong path, method, content type or encoding.
    NotOtlp,
    Undecodable,
    TooLarge,
    OverLimit,
    /// The store did not open (or reopen) within the wait, or failed to open.
    StoreUnavailable,
    /// Too many bytes of exports already held waiting.
    HoldFull,
    /// The writer stayed behind for the whole wait.
    WriterBehind,
    DiskFull,
    WriteFailed,
    ShuttingDown,
    /// The TLS handshake failed or the client certificate was not accepted.
    Tls,
}

impl RefusalReason {
    pub fn describe(self) -> &'static str {
        match self {
            RefusalReason::MissingToken => "no ingest token",
            RefusalReason::InvalidToken => "invalid ingest token",
            RefusalReason::MalformedAuthorization => "malformed Authorization header",
            RefusalReason::NotOtlp => "not an OTLP request",
            RefusalReason::Undecodable => "undecodable body",
            RefusalReason::TooLarge => "too large",
            RefusalReason::OverLimit => "over an input limit",
            RefusalReason::StoreUnavailable => "store unavailable",
            RefusalReason::HoldFull => "too many exports waiting",
            RefusalReason::WriterBehind => "writer behind",
            RefusalReason::DiskFull => "disk full",
            RefusalReason::WriteFailed => "write failed",
            RefusalReason::ShuttingDown => "shutting down",
            RefusalReason::Tls => "TLS refused",
        }
    }
}

/// The refusals of one reason.
#[derive(Debug, Clone, Serialize)]
pub struct Refusals {
    pub count: u64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub last_peer: Option<String>,
    pub last_protocol: Protocol,
    pub last_signal: Option<&'static str>,
    pub last_message: String,
    #[serde(skip)]
    logged: Option<Instant>,
    /// Refused since the last log line of this reason.
    #[serde(skip)]
    unlogged: u64,
}

/// Exports and records stored of one signal.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stored {
    pub exports: u64,
    pub records: u64,
}

/// One log line per reason at most this often; the line counts the ones in between.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Stored per signal name.
type StoredBySignal = BTreeMap<&'static str, Stored>;

#[derive(Debug, Default)]
pub struct IngestStats {
    held_bytes: AtomicUsize,
    waiting: AtomicUsize,
    /// Since start, and since the last summary line.
    stored: Mutex<(StoredBySignal, StoredBySignal)>,
    first_logged: AtomicBool,
    last_stored: Mutex<Option<DateTime<Utc>>>,
    refusals: Mutex<BTreeMap<RefusalReason, Refusals>>,
}

/// Bytes of an export counted as held until it is answered.
pub struct Held<'a> {
    stats: &'a IngestStats,
    bytes: usize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.stats.held_bytes.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// An export counted as waiting (for the store to open, or for the writer) while it lives.
pub struct Waiting<'a>(&'a IngestStats);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What CheckHealth says about ingest.
#[derive(Debug, Clone, Serialize)]
pub struct IngestHealth {
    pub waiting_exports: usize,
    pub held_bytes: usize,
    pub stored: StoredBySignal,
    pub last_stored: Option<DateTime<Utc>>,
    pub refusals: BTreeMap<RefusalReason, Refusals>,
}

impl IngestStats {
    /// Counts `bytes` as held, unless that would pass `max`: then the bytes already held.
    pub fn hold(&self, bytes: usize, max: usize) -> Result<Held<'_>, usize> {
        let mut held = self.held_bytes.load(Ordering::Relaxed);
        loop {
            // one export alone is always taken, whatever its size (the body limit bounds it)
            if held > 0 && held.saturating_add(bytes) > max {
                return Err(held);
            }
            match self.held_bytes.compare_exchange_weak(held, held + bytes, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(Held { stats: self, bytes }),
                Err(now) => held = now,
            }
        }
    }

    pub fn waiting(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self)
    }

    /// Counts a stored export; the first one after start is logged at once.
    pub fn stored(&self, signal: Signal, records: usize, origin: &Origin) {
        {
            let mut stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
            let (all, recent) = &mut *stored;
            for counts in [all, recent] {
                let s = counts.entry(signal.name()).or_default();
                s.exports += 1;
                s.records += records as u64;
            }
        }
        *self.last_stored.lock().unwrap_or_else(|p| p.into_inner()) = Some(Utc::now());
        tracing::debug!(signal = signal.name(), records, protocol = origin.protocol.name(), peer = %peer_text(origin.peer), "export stored");
        if !self.first_logged.swap(true, Ordering::Relaxed) {
            tracing::info!(
                signal = signal.name(),
                records,
                protocol = origin.protocol.name(),
                peer = %peer_text(origin.peer),
                "first export stored since start"
            );
        }
    }

    /// Logs what was stored since the last call (nothing when nothing was).
    pub fn log_summary(&self) {
        let recent = std::mem::take(&mut self.stored.lock().unwrap_or_else(|p| p.into_inner()).1);
        if recent.is_empty() {
            return;
        }
        let text: Vec<String> =
            recent.iter().map(|(signal, s)| format!("{signal} {} exports / {} records", s.exports, s.records)).collect();
        tracing::info!(stored = %text.join(", "), "exports stored in the last minute");
    }

    /// Counts and (rate-limited) logs a refused export.
    pub fn refused(&self, reason: RefusalReason, signal: Option<Signal>, origin: &Origin, message: &str) {
        let now = Utc::now();
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        let r = refusals.entry(reason).or_insert_with(|| Refusals {
            count: 0,
            first: now,
            last: now,
            last_peer: None,
            last_protocol: origin.protocol,
            last_signal: None,
            last_message: String::new(),
            logged: None,
            unlogged: 0,
        });
        r.count += 1;
        r.last = now;
        r.last_peer = origin.peer.map(|p| p.to_string());
        r.last_protocol = origin.protocol;
        r.last_signal = signal.map(Signal::name);
        r.last_message = message.to_string();
        if r.logged.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            r.unlogged += 1;
            return;
        }
        let before = std::mem::take(&mut r.unlogged);
        r.logged = Some(Instant::now());
        tracing::warn!(
            reason = reason.describe(),
            signal = signal.map(Signal::name).unwrap_or("-"),
            protocol = origin.protocol.name(),
            peer = %peer_text(origin.peer),
            refused_since_last_line = before,
            error = %message,
            "export refused"
        );
    }

    pub fn health(&self) -> IngestHealth {
        IngestHealth {
            waiting_exports: self.waiting.load(Ordering::Relaxed),
            held_bytes: self.held_bytes.load(Ordering::Relaxed),
            stored: self.stored.lock().unwrap_or_else(|p| p.into_inner()).0.clone(),
            last_stored: *self.last_stored.lock().unwrap_or_else(|p| p.into_inner()),
            refusals: self.refusals.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

fn peer_text(peer: Option<SocketAddr>) -> String {
    peer.map(|p| p.to_string()).unwrap_or_else(|| "-".into())
}

impl IngestHealth {
    /// "37 exports refused since 10:02:11: invalid ingest token (37, last from 10.0.0.7 over
    /// gRPC 2 min ago)", or `None` when nothing was refused.
    pub fn refusals_text(&self, now: DateTime<Utc>) -> Option<String> {
        let total: u64 = self.refusals.values().map(|r| r.count).sum();
        let first = self.refusals.values().map(|r| r.first).min()?;
        let mut by_count: Vec<(&RefusalReason, &Refusals)> = self.refusals.iter().collect();
        by_count.sort_by_key(|(_, r)| std::cmp::Reverse(r.count));
        let parts: Vec<String> = by_count
            .iter()
            .map(|(reason, r)| {
                let from =
                    r.last_peer.as_deref().map(|p| format!(" from {}", p.rsplit_once(':').map_or(p, |(h, _)| h))).unwrap_or_default();
                format!(
                    "{} ({}, last{from} over {} {} ago: {})",
                    reason.describe(),
                    r.count,
                    r.last_protocol.name(),
                    ago(now - r.last),
                    r.last_message
                )
            })
            .collect();
        Some(format!("{total} exports refused since {}: {}", first.format("%Y-%m-%d %H:%M:%S UTC"), parts.join("; ")))
    }

    /// Whether every export since the last refusal was refused too: the client is misconfigured
    /// now, not only in the past.
    pub fn refusing_now(&self) -> bool {
        let last_refusal = self.refusals.values().map(|r| r.last).max();
        match (last_refusal, self.last_stored) {
            (Some(refused), Some(stored)) => refused > stored,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

fn ago(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_by_reason_and_named() {
        let stats = IngestStats::default();
        let origin = Origin { protocol: Protocol::Grpc, peer: Some("10.0.0.7:5555".parse().unwrap()) };
        for _ in 0..37 {
            stats.refused(RefusalReason::InvalidToken, Some(Signal::Logs), &origin, "invalid ingest token");
        }
        let h = stats.health();
        assert_eq!(h.refusals[&RefusalReason::InvalidToken].count, 37);
        let text = h.refusals_text(Utc::now() + chrono::Duration::minutes(2)).unwrap();
        assert!(text.starts_with("37 exports refused since "), "{text}");
        assert!(text.contains("invalid ingest token (37, last from 10.0.0.7 over gRPC 2 min ago"), "{text}");
        assert!(h.refusing_now());
        stats.stored(Signal::Logs, 3, &origin);
        assert!(!stats.health().refusing_now(), "an export stored since");
        assert_eq!(stats.health().stored["logs"].records, 3);
    }

    #[test]
    fn holding_is_bounded_but_one_export_always_fits() {
        let stats = IngestStats::default();
        let big = stats.hold(100, 10).expect("alone, any size");
        assert_eq!(stats.hold(1, 10).err(), Some(100));
        drop(big);
        let a = stats.hold(6, 10).unwrap();
        assert!(stats.hold(5, 10).is_err());
        let b = stats.hold(4, 10).unwrap();
        assert_eq!(stats.health().held_bytes, 10);
        drop((a, b));
        assert_eq!(stats.health().held_bytes, 0);
    }
}
