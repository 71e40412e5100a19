//! Typed queries → parameterized SQL → result tables → Grafana frames.
pub mod catalog;
pub mod explore;
pub mod filters;
pub mod frames;
pub mod measures;
pub mod model;
pub mod raw;
pub mod series;
pub mod sessions;
pub mod sql;
pub mod tools;
pub mod usage;

use chrono::{DateTime, Utc};
use duckdb::Connection;
use grafana_plugin_sdk::data::{Frame, Metadata, VisType};

use filters::Filters;
use frames::{Column, Table};
use model::{ParsedQuery, Query};
use sql::{Params, Sql};

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
    /// buckets cover the range, and at least one second.
    pub fn bucket_us(&self) -> i64 {
        let range_us = (self.to - self.from).num_microseconds().unwrap_or(i64::MAX).max(1);
        let points = if self.max_data_points > 0 { self.max_data_points.min(10_000) } else { 1_000 };
        let min_for_points = range_us / points;
        (self.interval_ms.max(0).saturating_mul(1_000)).max(min_for_points).max(1_000_000)
    }
}

/// One query's connection, time range and filters, handed to every SQL builder.
pub struct Runner<'a> {
    pub conn: &'a Connection,
    pub ctx: &'a QueryContext,
    pub filters: &'a Filters,
    /// See `ParsedQuery::value_field`; applies to table results.
    pub value_field: Option<&'a str>,
}

impl Runner<'_> {
    /// Parameters starting with the time range as `$1`, `$2`.
    pub fn params(&self) -> Params {
        Params::with_range(self.ctx.from, self.ctx.to)
    }

    /// Runs `sql` and returns its result as one table frame.
    pub fn table(&self, name: &str, sql: Sql) -> Result<Vec<Frame>, String> {
        let table = self.reduce(sql.run(self.conn)?)?;
        Ok(vec![table_to_frame(name, table, &sql)])
    }

    /// Applies `valueField` to a table result.
    pub fn reduce(&self, table: Table) -> Result<Table, String> {
        match self.value_field {
            Some(name) => keep_value_field(table, name),
            None => Ok(table),
        }
    }
}

/// Runs a query on a reader connection and returns its frames (blocking).
pub fn run(conn: &Connection, parsed: &ParsedQuery, ctx: &QueryContext) -> Result<Vec<Frame>, String> {
    let r = Runner { conn, ctx, filters: &parsed.filters, value_field: None };
    let r = Runner { value_field: parsed.value_field.as_deref(), ..r };
    let frames = match &parsed.query {
        Query::Sessions(q) => r.table("sessions", sessions::sessions_sql(&r, q)?),
        Query::SessionTimeline(q) => r.table("session_timeline", sessions::timeline_sql(&r, q)?),
        Query::Prompts(q) => r.table("prompts", sessions::prompts_sql(&r, q)?),
        Query::CostByModel(q) => usage::cost_by_model(&r, q),
        Query::Stat(q) => measures::stat(&r, q),
        Query::Breakdown(q) => measures::breakdown(&r, q),
        Query::ApiLatency(q) => usage::api_latency(&r, q),
        Query::ApiErrors(q) => usage::api_errors(&r, q),
        Query::Productivity(q) => usage::productivity(&r, q),
        Query::ToolSuccessRate(_) => r.table("tool_success_rate", tools::success_sql(&r)?),
        Query::ToolErrors(_) => r.table("tool_errors", tools::errors_sql(&r)?),
        Query::ToolDecisions(_) => r.table("tool_decisions", tools::decisions_sql(&r)?),
        Query::ToolCosts(_) => r.table("tool_costs", tools::costs_sql(&r)?),
        Query::Logs(q) => explore::logs(&r, q),
        Query::Trace(q) => explore::trace(&r, q),
        Query::EventCounts(_) => r.table("event_counts", explore::event_counts_sql(&r)?),
        Query::Variable(q) => explore::variable(&r, q),
        Query::Annotations(q) => explore::annotations(&r, q),
        Query::Sql(q) => raw::run(&r, q),
    }?;
    Ok(frames)
}

pub fn meta(sql: &Sql, vis: Option<VisType>) -> Metadata {
    meta_text(sql.describe(), vis)
}

pub fn meta_text(executed: String, vis: Option<VisType>) -> Metadata {
    let mut m = Metadata::default();
    m.executed_query_string = Some(executed);
    m.preferred_visualisation = vis;
    m
}

/// A table frame of the whole result; an empty result is a frame without fields ("no data").
pub fn table_to_frame(name: &str, table: Table, sql: &Sql) -> Frame {
    let mut frame = Frame::new(name).with_metadata(meta(sql, Some(VisType::Table)));
    if table.rows() > 0 {
        frame = frame.with_fields(table.into_fields());
    }
    frame
}

/// Reduces a table to its text columns and the one numeric column `name`: the numeric-table
/// shape server-side expressions turn into one labelled number per row.
fn keep_value_field(table: Table, name: &str) -> Result<Table, String> {
    if !table.names.iter().any(|n| n == name) {
        return Err(format!("valueField {name:?} is not a column of the result (columns: {})", table.names.join(", ")));
    }
    let (names, columns) = table.names.into_iter().zip(table.columns).filter(|(n, c)| n == name || matches!(c, Column::Text(_))).unzip();
    Ok(Table { names, columns })
}

/// Column helpers shared by tests.
#[cfg(test)]
pub mod testing {
    use super::*;
    use crate::app::AppState;

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
        let parsed = model::parse(&json, "")?;
        state
            .store()
            .unwrap()
            .read(move |c| run(c, &parsed, &ctx).map_err(crate::store::StoreError::Rejected))
            .await
            .map_err(|e| e.to_string())
    }

    /// The first frame as JSON values per field name (numbers as f64, times as µs).
    pub fn columns(frame: &Frame) -> std::collections::BTreeMap<String, Vec<serde_json::Value>> {
        frame.check().expect("valid frame");
        let json = serde_json::to_value(frame).expect("frame json");
        let mut out = std::collections::BTreeMap::new();
        let names: Vec<String> = frame.fields().iter().map(|f| f.name.clone()).collect();
        if let Some(values) = json.pointer("/data/values").and_then(|v| v.as_array()) {
            for (name, vals) in names.into_iter().zip(values) {
                out.insert(name, vals.as_array().cloned().unwrap_or_default());
            }
        }
        out
    }

    pub async fn table(state: &AppState, sql: Sql) -> Table {
        state.store().unwrap().read(move |c| sql.run(c).map_err(crate::store::StoreError::Task)).await.unwrap()
    }

    pub fn ints(t: &Table, name: &str) -> Vec<i64> {
        match t.column(name) {
            Some(Column::Int(v)) => v.iter().map(|x| x.unwrap_or(-1)).collect(),
            Some(c) => (0..t.rows()).map(|r| c.f64_at(r).map(|f| f as i64).unwrap_or(-1)).collect(),
            None => panic!("no column {name} in {:?}", t.names),
        }
    }

    pub fn floats(t: &Table, name: &str) -> Vec<f64> {
        (0..t.rows()).map(|r| t.column(name).and_then(|c| c.f64_at(r)).unwrap_or(f64::NAN)).collect()
    }

    pub fn texts(t: &Table, name: &str) -> Vec<String> {
        (0..t.rows()).map(|r| t.column(name).and_then(|c| c.text_at(r)).unwrap_or("").to_string()).collect()
    }
}
#[cfg(test)]
mod tests;
