//! Events as they are committed, for live tails (Grafana Live): after each commit the writer
//! hands the new events to whoever listens, as the log lines `logs` would return for them, and
//! builds nothing while nobody listens. Every listener has a bounded backlog of commits; one
//! that falls further behind loses the oldest and is told how many.
use std::sync::Arc;

use duckdb::types::Value;
use serde_json::{Map, Value as Json};
use tokio::sync::broadcast;

use super::masked;
use super::rows::{EventRow, Micros};
use super::schema::{ColumnKind, EVENT_COLUMNS};

/// Commits a listener may fall behind before it loses the oldest. Exports carry up to a few
/// thousand events, so this bounds what one stuck listener holds to some 100 MB.
pub const BACKLOG_COMMITS: usize = 64;

/// One committed event as a log line: the fields of the `logs` query's frame.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvent {
    pub time_us: Micros,
    pub body: String,
    /// `body` over the masked views, when it shows content (`store::masked`).
    pub masked_body: Option<String>,
    pub severity: &'static str,
    /// The event's resource and every attribute, as JSON text.
    pub labels: String,
    pub event_name: String,
    pub session_id: Option<String>,
    pub prompt_id: Option<String>,
    pub trace_id: Option<String>,
    pub user_id: Option<String>,
    pub model: Option<String>,
    pub tool_name: Option<String>,
    pub event_sequence: Option<i64>,
}

impl LiveEvent {
    /// The line as a reader without content access sees it: as `logs` gives it over the
    /// masked views.
    pub fn masked(&self) -> LiveEvent {
        LiveEvent {
            body: self.masked_body.clone().unwrap_or_else(|| self.body.clone()),
            masked_body: None,
            labels: masked::hide_in_json_text(&self.labels),
            ..self.clone()
        }
    }
}

/// The events of one commit, in the order they were stored.
pub type LiveBatch = Arc<[LiveEvent]>;

/// Where committed events go out to live listeners.
#[derive(Debug, Clone)]
pub struct Live {
    tx: broadcast::Sender<LiveBatch>,
}

impl Default for Live {
    fn default() -> Self {
        Live { tx: broadcast::channel(BACKLOG_COMMITS).0 }
    }
}

impl Live {
    /// A listener: every commit from now on, until it is dropped.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveBatch> {
        self.tx.subscribe()
    }

    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Hands a commit's events to the listeners; nothing is built or kept without any.
    pub(crate) fn publish(&self, rows: &[&EventRow]) {
        if self.tx.receiver_count() == 0 || rows.is_empty() {
            return;
        }
        let events: LiveBatch = rows.iter().map(|r| line(r)).collect();
        // no listener left since the check: nothing to do
        let _ = self.tx.send(events);
    }
}

fn typed<'a>(row: &'a EventRow, column: &str) -> Option<&'a Value> {
    let i = EVENT_COLUMNS.iter().position(|c| c.column == column)?;
    row.common.typed.get(i).filter(|v| !matches!(v, Value::Null))
}

/// A typed value as DuckDB casts it to VARCHAR.
fn text(value: &Value) -> Option<String> {
    Some(match value {
        Value::Text(t) => t.clone(),
        Value::Boolean(b) => b.to_string(),
        Value::BigInt(i) => i.to_string(),
        Value::Double(d) => double_text(*d),
        Value::Timestamp(_, us) => chrono::DateTime::from_timestamp_micros(*us)?.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
        _ => return None,
    })
}

/// A DOUBLE as DuckDB writes it: the shortest digits that read back the same, with `.0` on
/// whole numbers, in exponent form (`1e-05`, `1e+16`) outside 1e-4 ≤ |x| < 1e16.
pub fn double_text(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let exponent = x.abs().log10().floor() as i32;
    if (-4..16).contains(&exponent) {
        let fixed = format!("{x}");
        return if fixed.contains('.') { fixed } else { format!("{fixed}.0") };
    }
    // Rust's `{:e}` is shortest too: `1.5e-7` → `1.5e-07`
    let scientific = format!("{x:e}");
    let (mantissa, exp) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// The level `logs` gives an event (`query::logs::SEVERITY_SQL`).
fn severity(row: &EventRow) -> &'static str {
    let failed = matches!(typed(row, "success"), Some(Value::Boolean(false)));
    if matches!(row.event_name.as_str(), "api_error" | "api_retries_exhausted" | "internal_error") || failed {
        "error"
    } else if row.event_name == "api_refusal" || matches!(typed(row, "decision"), Some(Value::Text(d)) if d == "reject") {
        "warning"
    } else {
        "info"
    }
}

/// The line's text as `logs` writes it: the event name, then `key=value` of the fields set;
/// and, when that shows content, the text as `logs` writes it over the masked views.
fn body(row: &EventRow) -> (String, Option<String>) {
    let mut parts = vec![row.event_name.clone()];
    let mut masked_parts = parts.clone();
    let mut shows_content = false;
    for (label, column) in [
        ("model", "model"),
        ("tool", "tool_name"),
        ("decision", "decision"),
        ("source", "source"),
        ("success", "success"),
        ("status", "status_code"),
        ("cost_usd", "cost_usd"),
        ("duration_ms", "duration_ms"),
        ("error", "error"),
        ("prompt", "prompt"),
    ] {
        if let Some(value) = typed(row, column).and_then(text) {
            if masked::EVENT_CONTENT_COLUMNS.contains(&column) {
                shows_content = true;
                masked_parts.push(format!("{label}={}", masked::MARKER));
            } else {
                masked_parts.push(format!("{label}={value}"));
            }
            parts.push(format!("{label}={value}"));
        }
    }
    (parts.join(" "), shows_content.then(|| masked_parts.join(" ")))
}

/// The resource with every attribute over it, the typed columns lifted out of the attributes
/// put back as they were sent (`schema::full_attributes_sql`).
fn labels(row: &EventRow) -> String {
    let object = |text: &str| serde_json::from_str::<Map<String, Json>>(text).unwrap_or_default();
    let mut all = object(&row.common.resource);
    if row.event_name_lifted {
        all.insert("event.name".into(), Json::String(row.event_name.clone()));
    }
    for (i, c) in EVENT_COLUMNS.iter().enumerate() {
        if !c.liftable() || row.common.lifted >> i & 1 == 0 {
            continue;
        }
        let Some(value) = row.common.typed.get(i) else { continue };
        let native = row.common.native >> i & 1 == 1;
        let json = match (c.kind, value) {
            (_, Value::Null) => continue,
            (ColumnKind::Timestamp, Value::Timestamp(_, us)) => match chrono::DateTime::from_timestamp_micros(*us) {
                Some(t) => Json::String(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
                None => continue,
            },
            (_, Value::BigInt(n)) if native => Json::from(*n),
            (_, Value::Boolean(b)) if native => Json::Bool(*b),
            (_, v) => match text(v) {
                Some(t) => Json::String(t),
                None => continue,
            },
        };
        all.insert(c.keys[0].to_string(), json);
    }
    all.extend(object(&row.common.attributes));
    Json::Object(all).to_string()
}

fn line(row: &EventRow) -> LiveEvent {
    let text_of = |column: &str| typed(row, column).and_then(text);
    let (body, masked_body) = body(row);
    LiveEvent {
        time_us: row.time,
        body,
        masked_body,
        severity: severity(row),
        labels: labels(row),
        event_name: row.event_name.clone(),
        session_id: text_of("session_id"),
        prompt_id: text_of("prompt_id"),
        trace_id: row.trace_id.clone(),
        user_id: text_of("user_id"),
        model: text_of("model"),
        tool_name: text_of("tool_name"),
        event_sequence: match typed(row, "event_sequence") {
            Some(Value::BigInt(n)) => Some(*n),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_read_as_duckdb_writes_them() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        for x in [36.0, 0.048449, 1e-5, 1.5e-7, 0.0001, 123456.789, 1e15, 1e16, 2.5e20, -3.25, 0.1 + 0.2, 0.0] {
            let duckdb: String = conn.query_row("SELECT CAST(?::DOUBLE AS VARCHAR)", [x], |r| r.get(0)).unwrap();
            assert_eq!(double_text(x), duckdb, "{x}");
        }
    }

    #[test]
    fn nothing_is_built_without_listeners() {
        let live = Live::default();
        assert_eq!(live.listeners(), 0);
        let mut rx = live.subscribe();
        assert_eq!(live.listeners(), 1);
        drop(rx);
        assert_eq!(live.listeners(), 0);
        rx = live.subscribe();
        live.publish(&[]);
        assert!(rx.try_recv().is_err());
    }
}
