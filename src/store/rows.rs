//! Rows as the store appends them: one struct per table, written value by value in the column
//! order of `schema` straight into the Arrow builders (`columnar::Row`; the writer's tests check
//! the counts match the tables).
use duckdb::types::Value;

use super::columnar::{Cell, Cells, Row};
use super::schema::{AttrColumn, EVENT_COLUMNS, METRIC_COLUMNS, SPAN_COLUMNS};

/// Microseconds since the Unix epoch, DuckDB's TIMESTAMP resolution.
pub type Micros = i64;

fn ts(us: Micros) -> Cell<'static> {
    Cell::Timestamp(us)
}

fn opt_ts(us: Option<Micros>) -> Cell<'static> {
    us.map_or(Cell::Null, Cell::Timestamp)
}

/// What every record carries besides its own fields: the typed attribute columns of its table
/// and everything verbatim as JSON, plus the instrumentation scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    /// Values of the table's typed columns (`schema::*_COLUMNS`), in order.
    pub typed: Vec<Value>,
    /// Bit `i`: typed column `i` holds an attribute taken out of `attributes` (see
    /// `schema::full_attributes_sql`).
    pub lifted: u64,
    /// Bit `i`: of those, column `i`'s was sent as a JSON number or boolean.
    pub native: u64,
    pub attributes: String,
    pub resource: String,
    pub scope_name: Option<String>,
    pub scope_version: Option<String>,
}

impl Common {
    /// Writes the typed columns of the first schema, then attributes, resource, scope and the
    /// table's `tail`, then `lifted`, `lifted_native`, `later` and the typed columns added since, as the
    /// tables order them.
    fn write<'a>(
        &'a self,
        columns: &[AttrColumn],
        cells: &mut Cells,
        tail: impl IntoIterator<Item = Cell<'a>>,
        later: impl IntoIterator<Item = Cell<'a>>,
    ) {
        let typed = || columns.iter().zip(&self.typed);
        for (_, v) in typed().filter(|(c, _)| c.since == 1) {
            cells.push(v);
        }
        cells.push(self.attributes.as_str());
        cells.push(self.resource.as_str());
        cells.push(self.scope_name.as_ref());
        cells.push(self.scope_version.as_ref());
        tail.into_iter().for_each(|c| cells.push(c));
        // 0 is "nothing lifted"; NULL marks rows written before schema v4
        cells.push(Cell::UInt64(self.lifted));
        cells.push(if self.native == 0 { Cell::Null } else { Cell::UInt64(self.native) });
        later.into_iter().for_each(|c| cells.push(c));
        for (_, v) in typed().filter(|(c, _)| c.since != 1) {
            cells.push(v);
        }
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
}

impl Row for EventRow {
    fn write(&self, cells: &mut Cells) {
        cells.push(ts(self.time));
        cells.push(opt_ts(self.observed_time));
        cells.push(ts(self.received_at));
        cells.push(&self.event_name);
        cells.push(self.body.as_ref());
        cells.push(self.severity_number.map_or(Cell::Null, Cell::Int32));
        cells.push(self.severity_text.as_ref());
        cells.push(self.trace_id.as_ref());
        cells.push(self.span_id.as_ref());
        cells.push(self.flags.map_or(Cell::Null, Cell::UInt32));
        let lifted = if self.event_name_lifted { Cell::Boolean(true) } else { Cell::Null };
        self.common.write(EVENT_COLUMNS, cells, [Cell::UInt32(self.dropped_attributes)], [lifted]);
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
}

impl Row for MetricRow {
    fn write(&self, cells: &mut Cells) {
        cells.push(ts(self.time));
        cells.push(opt_ts(self.start_time));
        cells.push(ts(self.received_at));
        cells.push(&self.metric_name);
        cells.push(self.unit.as_ref());
        cells.push(self.description.as_ref());
        cells.push(self.kind);
        cells.push(self.temporality.map(Temporality::name));
        cells.push(self.is_monotonic.map_or(Cell::Null, Cell::Boolean));
        cells.push(self.value.map_or(Cell::Null, Cell::Float64));
        cells.push(self.increment.map_or(Cell::Null, Cell::Float64));
        cells.push(self.count.map_or(Cell::Null, Cell::UInt64));
        cells.push(Cell::UInt64(self.series_key));
        let tail = [Cell::from(self.extra.as_ref()), self.flags.map_or(Cell::Null, Cell::UInt32)];
        self.common.write(METRIC_COLUMNS, cells, tail, []);
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

impl SpanRow {}

impl Row for SpanRow {
    fn write(&self, cells: &mut Cells) {
        cells.push(&self.trace_id);
        cells.push(&self.span_id);
        cells.push(self.parent_span_id.as_ref());
        cells.push(&self.name);
        cells.push(self.kind.as_ref());
        cells.push(ts(self.start_time));
        cells.push(opt_ts(self.end_time));
        cells.push(self.duration_ms.map_or(Cell::Null, Cell::Float64));
        cells.push(ts(self.received_at));
        cells.push(self.status.as_ref());
        cells.push(self.status_message.as_ref());
        cells.push(self.trace_state.as_ref());
        cells.push(self.flags.map_or(Cell::Null, Cell::UInt32));
        self.common.write(SPAN_COLUMNS, cells, [Cell::from(self.events.as_ref()), Cell::from(self.links.as_ref())], []);
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
