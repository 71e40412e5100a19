//! Rows as the store appends them: one struct per table, turned into positional values in the
//! column order of `schema` (a unit test checks the counts match the tables).
use duckdb::types::{TimeUnit, Value};

use super::schema::{AttrColumn, EVENT_COLUMNS, METRIC_COLUMNS, SPAN_COLUMNS};

/// Microseconds since the Unix epoch, DuckDB's TIMESTAMP resolution.
pub type Micros = i64;

fn ts(us: Micros) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, us)
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    v.map(f).unwrap_or(Value::Null)
}

fn text(s: Option<String>) -> Value {
    opt(s, Value::Text)
}

/// What every record carries besides its own fields: the typed attribute columns of its table
/// and everything verbatim as JSON, plus the instrumentation scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    /// Values of the table's typed columns (`schema::*_COLUMNS`), in order.
    pub typed: Vec<Value>,
    /// Bit `i`: typed column `i` holds an attribute sent as a JSON number or boolean, lifted out
    /// of `attributes` (see `schema::full_attributes_sql`).
    pub native: u64,
    pub attributes: String,
    pub resource: String,
    pub scope_name: Option<String>,
    pub scope_version: Option<String>,
}

impl Common {
    /// Appends the typed columns of the first schema, then attributes, resource, scope and the
    /// table's `tail`, then `lifted_native`, `later` and the typed columns added since, as the
    /// tables order them.
    fn push_values(
        self,
        columns: &[AttrColumn],
        head: &mut Vec<Value>,
        tail: impl IntoIterator<Item = Value>,
        later: impl IntoIterator<Item = Value>,
    ) {
        let mut added = Vec::new();
        for (c, v) in columns.iter().zip(self.typed) {
            if c.since == 1 {
                head.push(v);
            } else {
                added.push(v);
            }
        }
        head.extend([Value::Text(self.attributes), Value::Text(self.resource), text(self.scope_name), text(self.scope_version)]);
        head.extend(tail);
        head.push(if self.native == 0 { Value::Null } else { Value::UBigInt(self.native) });
        head.extend(later);
        head.extend(added);
    }
}

/// One OTLP log record (a Claude Code event).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub time: Micros,
    pub observed_time: Option<Micros>,
    pub received_at: Micros,
    pub event_name: String,
    pub body: Option<String>,
    pub severity_number: Option<i32>,
    pub severity_text: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub flags: Option<u32>,
    pub common: Common,
    pub dropped_attributes: u32,
    /// The `event.name` attribute equalled `event_name` and is stored only there.
    pub event_name_lifted: bool,
}

impl EventRow {
    /// A typed text column's value (`schema::EVENT_COLUMNS`).
    pub fn typed_text(&self, column: &str) -> Option<&str> {
        let i = EVENT_COLUMNS.iter().position(|c| c.column == column)?;
        match self.common.typed.get(i) {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// The call key of an `api_request`: session and request id.
    pub fn call_key(&self) -> Option<(String, String)> {
        if self.event_name != "api_request" {
            return None;
        }
        Some((self.typed_text("session_id")?.to_string(), self.typed_text("request_id")?.to_string()))
    }

    /// Input, output and cache tokens of the row.
    pub fn tokens(&self) -> i64 {
        ["input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens"]
            .iter()
            .filter_map(|c| EVENT_COLUMNS.iter().position(|x| x.column == *c))
            .map(|i| match self.common.typed.get(i) {
                Some(Value::BigInt(n)) => *n,
                _ => 0,
            })
            .sum()
    }

    pub fn into_values(self) -> Vec<Value> {
        let mut v = vec![
            ts(self.time),
            opt(self.observed_time, ts),
            ts(self.received_at),
            Value::Text(self.event_name),
            text(self.body),
            opt(self.severity_number, Value::Int),
            text(self.severity_text),
            text(self.trace_id),
            text(self.span_id),
            opt(self.flags, Value::UInt),
        ];
        let lifted = if self.event_name_lifted { Value::Boolean(true) } else { Value::Null };
        self.common.push_values(EVENT_COLUMNS, &mut v, [Value::UInt(self.dropped_attributes)], [lifted]);
        v
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    Unspecified,
    Delta,
    Cumulative,
}

impl Temporality {
    pub fn from_otlp(v: i32) -> Self {
        match v {
            1 => Temporality::Delta,
            2 => Temporality::Cumulative,
            _ => Temporality::Unspecified,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Temporality::Unspecified => "unspecified",
            Temporality::Delta => "delta",
            Temporality::Cumulative => "cumulative",
        }
    }
}

/// One metric data point.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub time: Micros,
    pub start_time: Option<Micros>,
    pub received_at: Micros,
    pub metric_name: String,
    pub unit: Option<String>,
    pub description: Option<String>,
    /// sum | gauge | histogram | exponential_histogram | summary
    pub kind: &'static str,
    pub temporality: Option<Temporality>,
    pub is_monotonic: Option<bool>,
    /// The value as sent (for histograms and summaries: their sum).
    pub value: Option<f64>,
    /// What this point adds to the series since the previous one: the value itself for delta
    /// points, the difference to the previous point for cumulative ones (set by the writer, which
    /// knows the previous point), NULL for gauges and summaries.
    pub increment: Option<f64>,
    pub count: Option<u64>,
    /// Identity of the series (metric, attributes, resource, scope), stable across restarts.
    pub series_key: u64,
    pub common: Common,
    /// Histogram buckets, summary quantiles, exemplars.
    pub extra: Option<String>,
    pub flags: Option<u32>,
}

impl MetricRow {
    /// Whether the writer must turn this cumulative value into an increment.
    pub fn needs_increment(&self) -> bool {
        self.temporality == Some(Temporality::Cumulative) && matches!(self.kind, "sum" | "histogram" | "exponential_histogram")
    }

    pub fn into_values(self) -> Vec<Value> {
        let mut v = vec![
            ts(self.time),
            opt(self.start_time, ts),
            ts(self.received_at),
            Value::Text(self.metric_name),
            text(self.unit),
            text(self.description),
            Value::Text(self.kind.to_string()),
            opt(self.temporality, |t| Value::Text(t.name().to_string())),
            opt(self.is_monotonic, Value::Boolean),
            opt(self.value, Value::Double),
            opt(self.increment, Value::Double),
            opt(self.count, Value::UBigInt),
            Value::UBigInt(self.series_key),
        ];
        self.common.push_values(METRIC_COLUMNS, &mut v, [text(self.extra), opt(self.flags, Value::UInt)], []);
        v
    }
}

/// One span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRow {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: Option<String>,
    pub start_time: Micros,
    pub end_time: Option<Micros>,
    pub duration_ms: Option<f64>,
    pub received_at: Micros,
    pub status: Option<String>,
    pub status_message: Option<String>,
    pub trace_state: Option<String>,
    pub flags: Option<u32>,
    pub common: Common,
    pub events: Option<String>,
    pub links: Option<String>,
}

impl SpanRow {
    pub fn into_values(self) -> Vec<Value> {
        let mut v = vec![
            Value::Text(self.trace_id),
            Value::Text(self.span_id),
            text(self.parent_span_id),
            Value::Text(self.name),
            text(self.kind),
            ts(self.start_time),
            opt(self.end_time, ts),
            opt(self.duration_ms, Value::Double),
            ts(self.received_at),
            text(self.status),
            text(self.status_message),
            text(self.trace_state),
            opt(self.flags, Value::UInt),
        ];
        self.common.push_values(SPAN_COLUMNS, &mut v, [text(self.events), text(self.links)], []);
        v
    }
}

/// Everything one export request adds, plus what was refused (reported as OTLP partial success).
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub events: Vec<EventRow>,
    pub points: Vec<MetricRow>,
    pub spans: Vec<SpanRow>,
    pub rejected: u64,
    pub reject_reason: Option<String>,
    /// Identity of the export request (hash of its content): a request whose key is already
    /// stored is a re-send and adds nothing.
    pub dedup_key: Option<u128>,
    /// Calls imported from transcripts: each is stored only when neither telemetry nor an
    /// earlier import has it (see `writer::Writer::sort_out_imports`).
    pub transcript: bool,
}

impl Batch {
    pub fn reject(&mut self, n: u64, reason: impl Into<String>) {
        self.rejected += n;
        if self.reject_reason.is_none() {
            self.reject_reason = Some(reason.into());
        }
    }
    pub fn len(&self) -> usize {
        self.events.len() + self.points.len() + self.spans.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
