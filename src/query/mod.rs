//! Typed queries → parameterized SQL → result tables → Grafana frames.
pub mod access;
pub mod agents;
pub mod catalog;
pub mod explore;
pub mod extensions;
pub mod filters;
pub mod fleet;
pub mod logs;
pub mod measures;
pub mod model;
pub mod plan;
pub mod pricing;
pub mod raw;
pub mod report;
pub mod repositories;
pub mod rollup;
pub mod series;
pub mod sessions;
pub mod sql;
pub mod table;
pub mod timezone;
pub mod tools;
pub mod traces;
pub mod usage;

use chrono::{DateTime, Utc};
use duckdb::Connection;

use crate::frame::{Frame, FrameType, Kind, Meta, VisType};
use filters::Filters;
use model::{ParsedQuery, Query};
use sql::{Params, Sql};
use table::{Table, Units};

/// Why a query produced no frames, which decides whom Grafana blames.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The query itself: bad options, a user's SQL, sandbox limits (Grafana's "downstream").
    #[error("{0}")]
    Invalid(String),
    /// The plugin's own SQL failed (a fault of the plugin, or its memory limit).
    #[error("{0}")]
    Failed(String),
}

impl From<String> for QueryError {
    fn from(message: String) -> Self {
        QueryError::Invalid(message)
    }
}

/// The store hands a query's own failure back as `Rejected` (the query's fault) or `Failed`.
impl From<QueryError> for crate::store::StoreError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Invalid(m) => crate::store::StoreError::Rejected(m),
            QueryError::Failed(m) => crate::store::StoreError::Failed(m),
        }
    }
}

impl From<&str> for QueryError {
    fn from(message: &str) -> Self {
        QueryError::Invalid(message.to_string())
    }
}

/// Everything of a DataQuery besides its JSON.
#[derive(Debug, Clone, Copy)]
pub struct QueryContext {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Bucket width for time series, in ms (Grafana's `intervalMs`; 0 = derive from the range).
    pub interval_ms: i64,
    pub max_data_points: i64,
    /// Raw SQL time limit and row cap.
    pub limits: raw::Limits,
}

impl QueryContext {
    /// The bucket width in µs: Grafana's interval, widened so at most `max_data_points` (≤ 10 000)
    /// buckets cover the range, and at least one second. A widened bucket is rounded up to a
    /// round width, as Grafana rounds its own intervals: over days these are whole hours, which
    /// the rollups can answer (43.2 min buckets for 30 days on 1 000 points become 1 h).
    pub fn bucket_us(&self) -> i64 {
        let range_us = (self.to - self.from).num_microseconds().unwrap_or(i64::MAX).max(1);
        let points = if self.max_data_points > 0 { self.max_data_points.min(10_000) } else { 1_000 };
        let interval_us = self.interval_ms.max(0).saturating_mul(1_000).max(1_000_000);
        let min_for_points = range_us / points;
        if min_for_points <= interval_us {
            return interval_us;
        }
        const S: i64 = 1_000_000;
        const ROUND: [i64; 20] = [
            S,
            2 * S,
            5 * S,
            10 * S,
            15 * S,
            30 * S,
            60 * S,
            2 * 60 * S,
            5 * 60 * S,
            10 * 60 * S,
            15 * 60 * S,
            30 * 60 * S,
            3_600 * S,
            2 * 3_600 * S,
            3 * 3_600 * S,
            6 * 3_600 * S,
            12 * 3_600 * S,
            86_400 * S,
            7 * 86_400 * S,
            30 * 86_400 * S,
        ];
        // past the list: whole multiples of 30 days
        let month = ROUND[ROUND.len() - 1];
        ROUND.iter().copied().find(|w| *w >= min_for_points).unwrap_or_else(|| (min_for_points / month + 1).saturating_mul(month))
    }
}

/// What a datasource's settings add to every query: the prices in effect and its budgets.
#[derive(Debug, Clone)]
pub struct QuerySettings {
    pub prices: crate::prices::PriceTable,
    pub budgets: Vec<plan::Budget>,
    /// Read rollups where a query's shape allows (off: the rows only, to compare).
    pub rollups: bool,
    /// Whether the reader sees content or the masked views (`access`), and the lowest role
    /// that sees content, for the messages that say so.
    pub access: crate::store::masked::Access,
    pub content_role: access::Role,
}

impl Default for QuerySettings {
    fn default() -> Self {
        QuerySettings {
            prices: crate::prices::PriceTable::bundled(),
            budgets: Vec::new(),
            rollups: true,
            access: crate::store::masked::Access::Content,
            content_role: access::DEFAULT_CONTENT_ROLE,
        }
    }
}

/// One query's connection, time range and filters, handed to every SQL builder.
pub struct Runner<'a> {
    pub conn: &'a Connection,
    pub ctx: &'a QueryContext,
    pub filters: &'a Filters,
    /// See `ParsedQuery::value_field`; applies to table results.
    pub value_field: Option<&'a str>,
    pub settings: &'a QuerySettings,
    /// Warnings for the user (a model without a price), added to the first frame.
    notices: std::cell::RefCell<Vec<String>>,
    /// Whether a snapshot (`snapshot`) is open on the connection already.
    in_snapshot: std::cell::Cell<bool>,
}

impl<'a> Runner<'a> {
    pub fn new(conn: &'a Connection, ctx: &'a QueryContext, filters: &'a Filters, settings: &'a QuerySettings) -> Runner<'a> {
        Runner { conn, ctx, filters, value_field: None, settings, notices: Default::default(), in_snapshot: Default::default() }
    }

    /// Adds a warning shown with the result (once).
    pub fn notice(&self, text: String) {
        let mut notices = self.notices.borrow_mut();
        if !notices.contains(&text) {
            notices.push(text);
        }
    }

    /// Whether to read rollups: they hold no filter dimension, so only an unfiltered query can.
    pub fn rollups(&self) -> bool {
        self.settings.rollups && self.filters.is_empty()
    }

    /// Runs `f` in one snapshot of the database (a transaction, unless already in one), so a
    /// query's statements, the dirty rollup hours among them, see the same commits.
    pub fn snapshot<T>(&self, f: impl FnOnce() -> Result<T, QueryError>) -> Result<T, QueryError> {
        if self.in_snapshot.get() || !self.conn.is_autocommit() {
            return f();
        }
        self.conn.execute_batch("BEGIN TRANSACTION").map_err(|e| QueryError::Failed(format!("starting the query's transaction: {e}")))?;
        self.in_snapshot.set(true);
        let result = f();
        self.in_snapshot.set(false);
        if let Err(e) = self.conn.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" }) {
            tracing::warn!(error = %e, "ending a query's read transaction");
        }
        result
    }

    /// The span (µs, inclusive) holding every event and metric point of `sessions`, from the
    /// rollups of settled hours and the rows of the others; `(1, 0)` (nothing) when they have
    /// none. Scans of those sessions read only it (`Filters::session_span`).
    pub fn session_span(&self, sessions: &[String]) -> Result<Option<(i64, i64)>, QueryError> {
        use crate::store::rollup::{SESSION_EVENTS, SESSION_METRICS};
        /// 9999-12-31T24:00Z: every time a record can have, in whole hours.
        const END_US: i64 = 253_402_300_800_000_000;
        let cov = rollup::coverage_of(self, 0, END_US - 1)?;
        let mut p = Params::empty();
        let parts = [&*SESSION_EVENTS, &*SESSION_METRICS]
            .map(|r| format!("SELECT session_id, first_seen, last_seen FROM ({})", rollup::parts_sql(r, &cov, &mut p)));
        let ids = p.bind_list(sessions);
        let sql = p.into_sql(format!(
            "SELECT epoch_us(min(first_seen)) AS first_us, epoch_us(max(last_seen)) AS last_us FROM ({}) WHERE session_id IN ({ids})",
            parts.join("\nUNION ALL ")
        ));
        let t = sql.run(self.conn)?;
        let at = |name: &str| t.column(name).and_then(|f| f.number(0)).map(|x| x as i64);
        Ok(Some(at("first_us").zip(at("last_us")).unwrap_or((1, 0))))
    }

    /// Parameters starting with the time range as `$1`, `$2`.
    pub fn params(&self) -> Params {
        Params::with_range(self.ctx.from, self.ctx.to)
    }

    /// Runs `sql` and returns its result as one table frame.
    pub fn table(&self, name: &str, sql: Sql) -> Result<Vec<Frame>, QueryError> {
        self.table_with_json(name, sql, &[])
    }

    /// As `table`, with the named columns holding JSON documents sent as JSON.
    pub fn table_with_json(&self, name: &str, sql: Sql, json: &[&str]) -> Result<Vec<Frame>, QueryError> {
        let table = self.reduce(sql.run(self.conn)?.json(json))?;
        Ok(vec![table.into_frame(name, sql.describe(), Units::ByName)])
    }

    /// Applies `valueField` to a table result.
    pub fn reduce(&self, table: Table) -> Result<Table, QueryError> {
        match self.value_field {
            Some(name) => keep_value_field(table, name),
            None => Ok(table),
        }
    }
}

/// Runs a query on a reader connection and returns its frames (blocking). A reader without
/// content access reads the masked views, and a search or filter over content is refused.
pub fn run(conn: &Connection, parsed: &ParsedQuery, ctx: &QueryContext, settings: &QuerySettings) -> Result<Vec<Frame>, QueryError> {
    if settings.access == crate::store::masked::Access::Masked {
        access::check_masked(parsed, settings.content_role)?;
    }
    crate::store::masked::apply(conn, settings.access).map_err(|e| QueryError::Failed(format!("choosing what the query reads: {e}")))?;
    let run_with = |filters: &Filters, in_snapshot: bool| {
        let r = Runner {
            conn,
            ctx,
            filters,
            value_field: parsed.value_field.as_deref(),
            settings,
            notices: Default::default(),
            in_snapshot: in_snapshot.into(),
        };
        let mut frames = run_query(&r, parsed)?;
        if let Some(first) = frames.first_mut() {
            first.meta.notices.extend(r.notices.take().into_iter().map(crate::frame::Notice::warning));
        }
        Ok(frames)
    };
    if !settings.rollups || parsed.filters.sessions.is_empty() {
        return run_with(&parsed.filters, false);
    }
    // a few sessions' rows: only the span that holds them is read (one snapshot for both)
    let probe = Runner::new(conn, ctx, &parsed.filters, settings);
    probe.snapshot(|| {
        let session_span = probe.session_span(&parsed.filters.sessions)?;
        run_with(&Filters { session_span, ..parsed.filters.clone() }, true)
    })
}

fn run_query(r: &Runner, parsed: &ParsedQuery) -> Result<Vec<Frame>, QueryError> {
    match &parsed.query {
        Query::Sessions(q) => r.snapshot(|| r.table_with_json("sessions", sessions::sessions_sql(r, q)?, &["resource"])),
        Query::SessionTimeline(q) => r.snapshot(|| r.table_with_json("session_timeline", sessions::timeline_sql(r, q)?, &["attributes"])),
        Query::Prompts(q) => r.table("prompts", sessions::prompts_sql(r, q)?),
        Query::CostByModel(q) => r.snapshot(|| usage::cost_by_model(r, q)),
        Query::Stat(q) => r.snapshot(|| measures::stat(r, q)),
        Query::Breakdown(q) => r.snapshot(|| measures::breakdown(r, q)),
        Query::ApiLatency(q) => r.snapshot(|| usage::api_latency(r, q)),
        Query::ApiErrors(q) => r.snapshot(|| usage::api_errors(r, q)),
        Query::Productivity(q) => r.snapshot(|| usage::productivity(r, q)),
        Query::ToolSuccessRate(_) => r.snapshot(|| r.table("tool_success_rate", tools::success_sql(r)?)),
        Query::ToolErrors(_) => r.table("tool_errors", tools::errors_sql(r)?),
        Query::ToolDecisions(_) => r.table("tool_decisions", tools::decisions_sql(r)?),
        Query::ToolCosts(_) => r.table("tool_costs", tools::costs_sql(r)?),
        Query::Logs(q) => logs::logs(r, q),
        Query::LogsVolume(q) => logs::volume(r, q),
        Query::LogContext(q) => logs::context(r, q),
        Query::Live(q) => logs::live(q, r.settings.access),
        Query::Trace(q) => traces::trace(r, q),
        Query::Traces(q) => r.table("traces", traces::search_sql(r, q)?),
        Query::EventCounts(_) => r.table("event_counts", explore::event_counts_sql(r)?),
        Query::Repositories(q) => r.snapshot(|| r.table("repositories", repositories::repositories_sql(r, q)?)),
        Query::Agents(_) => r.snapshot(|| r.table("agents", agents::agents_sql(r)?)),
        Query::Hooks(_) => r.snapshot(|| r.table("hooks", extensions::hooks_sql(r)?)),
        Query::Mcp(_) => r.table("mcp", extensions::mcp_sql(r)?),
        Query::Skills(_) => r.table("skills", extensions::skills_sql(r)?),
        Query::Plugins(_) => r.table("plugins", extensions::plugins_sql(r)?),
        Query::ManagedSettings(_) => r.table("managed_settings", fleet::managed_settings_sql(r)?),
        Query::Fleet(_) => r.snapshot(|| r.table("fleet", fleet::fleet_sql(r)?)),
        Query::Variable(q) => explore::variable(r, q),
        Query::Annotations(q) => explore::annotations(r, q),
        Query::Sql(q) => raw::run(r, q),
        Query::Budget(q) => plan::budget(r, q),
        Query::UsageWindows(q) => plan::usage_windows(r, q),
        Query::UsageReport(q) => report::usage_report(r, q),
    }
}

/// A wide time series frame (`timeseries-wide`) of pivoted fields; none is "no data".
pub fn series_frame(name: &str, fields: Vec<crate::frame::Field>, executed: String) -> Frame {
    let meta = Meta::new(Some(FrameType::TimeSeriesWide), Some(VisType::Graph), Some(executed));
    Frame::new(name, meta, fields)
}

/// Reduces a table to its text columns and the one numeric column `name`: the numeric-table
/// shape server-side expressions turn into one labelled number per row.
fn keep_value_field(mut table: Table, name: &str) -> Result<Table, QueryError> {
    if table.column(name).is_none() {
        return Err(format!("valueField {name:?} is not a column of the result (columns: {})", table.names().join(", ")).into());
    }
    table.fields.retain(|f| f.name == name || f.kind() == Kind::Text);
    Ok(table)
}

/// Column helpers shared by tests.
#[cfg(test)]
pub mod testing {
    use super::*;
    use crate::app::AppState;
    use crate::frame::Field;
    use crate::store::StoreError;

    pub fn ctx() -> QueryContext {
        QueryContext {
            from: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            to: DateTime::from_timestamp(1_900_000_000, 0).unwrap(),
            interval_ms: 0,
            max_data_points: 1000,
            limits: raw::Limits::default(),
        }
    }

    /// One hour around the fixtures' capture time (2026-11-21 21:20–22:20 UTC), 1-minute buckets.
    pub fn hour() -> QueryContext {
        QueryContext {
            from: DateTime::from_timestamp(1_795_296_000, 0).unwrap(),
            to: DateTime::from_timestamp(1_795_299_599, 0).unwrap(),
            interval_ms: 60_000,
            max_data_points: 1000,
            limits: raw::Limits::default(),
        }
    }

    /// Runs query JSON against the state's store with `ctx`.
    pub async fn frames(state: &AppState, json: serde_json::Value, ctx: QueryContext) -> Result<Vec<Frame>, String> {
        frames_with(state, json, ctx, QuerySettings::default()).await
    }

    /// As `frames`, with a datasource's settings.
    pub async fn frames_with(
        state: &AppState,
        json: serde_json::Value,
        ctx: QueryContext,
        settings: QuerySettings,
    ) -> Result<Vec<Frame>, String> {
        let parsed = model::parse(&json, "")?;
        state.store().unwrap().read(move |c| run(c, &parsed, &ctx, &settings).map_err(StoreError::from)).await.map_err(|e| e.to_string())
    }

    /// A field's values as JSON: as `Field::json_value`, but times as ns and JSON that must parse.
    pub fn values(field: &Field) -> Vec<serde_json::Value> {
        use serde_json::Value;
        (0..field.len())
            .map(|row| match field.kind() {
                Kind::Time => field.time_ns(row).map(Value::from).unwrap_or(Value::Null),
                Kind::Json => field.text(row).map(|t| serde_json::from_str(t).expect("valid JSON")).unwrap_or(Value::Null),
                _ => field.json_value(row),
            })
            .collect()
    }

    /// The frame's values per field name.
    pub fn columns(frame: &Frame) -> std::collections::BTreeMap<String, Vec<serde_json::Value>> {
        frame.fields.iter().map(|f| (f.name.clone(), values(f))).collect()
    }

    /// A query's one frame as columns, over `ctx()` (the whole fixture period).
    pub async fn wide(state: &AppState, q: serde_json::Value) -> std::collections::BTreeMap<String, Vec<serde_json::Value>> {
        let fs = frames(state, q.clone(), ctx()).await.unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(fs.len(), 1, "{q}");
        columns(&fs[0])
    }

    /// Whether a column's numbers are `expected`, to 1e-9.
    pub fn all_close(values: &[serde_json::Value], expected: &[f64]) -> bool {
        values.len() == expected.len() && values.iter().zip(expected).all(|(v, e)| (v.as_f64().unwrap_or(f64::NAN) - e).abs() < 1e-9)
    }

    pub async fn table(state: &AppState, sql: Sql) -> Table {
        state.store().unwrap().read(move |c| sql.run(c).map_err(StoreError::from)).await.unwrap()
    }

    fn field<'t>(t: &'t Table, name: &str) -> &'t Field {
        t.column(name).unwrap_or_else(|| panic!("no column {name} in {:?}", t.names()))
    }

    pub fn ints(t: &Table, name: &str) -> Vec<i64> {
        let f = field(t, name);
        (0..t.rows()).map(|r| f.number(r).map(|x| x as i64).unwrap_or(-1)).collect()
    }

    pub fn floats(t: &Table, name: &str) -> Vec<f64> {
        let f = field(t, name);
        (0..t.rows()).map(|r| f.number(r).unwrap_or(f64::NAN)).collect()
    }

    pub fn texts(t: &Table, name: &str) -> Vec<String> {
        let f = field(t, name);
        (0..t.rows()).map(|r| f.text(r).unwrap_or("").to_string()).collect()
    }
}
#[cfg(test)]
mod tests;
