//! The queries the benchmark times: one complete example of every query type (the catalog's) and
//! every panel of the bundled dashboards, with dashboard variables resolved as Grafana sends them
//! ("All" for the filters, one real session for the sessions dashboard). The same queries' SQL,
//! captured from the query layer, is timed straight in DuckDB for the comparison.
use std::path::Path;
use std::time::{Duration, Instant};

use duckdb::Connection;
use serde_json::Value;

use crate::query::{self, sql::Sql, QueryContext};
use crate::store::masked::Access;

pub const OVERVIEW: &str = include_str!("../../dashboards/overview.json");
pub const SESSIONS: &str = include_str!("../../dashboards/sessions.json");

#[derive(Debug, Clone)]
pub struct NamedQuery {
    /// "query type", "overview panel" or "sessions panel".
    pub group: &'static str,
    pub name: String,
    pub json: Value,
}

/// Ids the examples need that only the data can give.
#[derive(Debug, Clone, Default)]
pub struct SampleIds {
    pub session_id: String,
    pub prompt_id: String,
}

/// Replaces dashboard variables the way Grafana interpolates them before QueryData.
fn resolve(value: &mut Value, ids: &SampleIds) {
    match value {
        Value::String(s) => {
            *s = s.replace("${team:sqlstring}", "$__all").replace("${model:sqlstring}", "$__all").replace("$session", &ids.session_id)
        }
        Value::Array(items) => items.iter_mut().for_each(|v| resolve(v, ids)),
        Value::Object(map) => map.values_mut().for_each(|v| resolve(v, ids)),
        _ => {}
    }
}

/// Every panel query of a dashboard's JSON, variables resolved.
pub fn dashboard_panels(dashboard: &str, group: &'static str, ids: &SampleIds) -> Result<Vec<NamedQuery>, String> {
    let json: Value = serde_json::from_str(dashboard).map_err(|e| format!("bundled dashboard: {e}"))?;
    let mut out = Vec::new();
    for panel in json["panels"].as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or("untitled").to_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let mut q = target.clone();
            if let Some(obj) = q.as_object_mut() {
                obj.remove("datasource");
            }
            resolve(&mut q, ids);
            out.push(NamedQuery { group, name: title.clone(), json: q });
        }
    }
    Ok(out)
}

/// The catalog's example of every query type, with the sample session and prompt.
pub fn query_types(ids: &SampleIds) -> Vec<NamedQuery> {
    query::catalog::query_types()
        .into_iter()
        .map(|info| {
            let mut q = info.example;
            if let Some(obj) = q.as_object_mut() {
                if obj.contains_key("sessionId") {
                    obj.insert("sessionId".into(), ids.session_id.clone().into());
                }
                if obj.contains_key("promptId") {
                    obj.insert("promptId".into(), ids.prompt_id.clone().into());
                }
            }
            NamedQuery { group: "query type", name: info.query_type.to_string(), json: q }
        })
        .collect()
}

/// Samples of one measurement, in ms.
#[derive(Debug, Clone, Default)]
pub struct Timing(pub Vec<f64>);

impl Timing {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64() * 1000.0);
    }
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }
    pub fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    /// Nearest-rank 95th percentile.
    pub fn p95(&self) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((0.95 * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }
}

/// Which SQL of a query the comparison runs straight in DuckDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raw {
    /// What the query layer ran (rollups where they answer).
    AsRun,
    /// The same question over the rows alone (rollups off).
    Rows,
}

/// The SQL a query runs, captured by running it once through the query layer on `conn`.
pub fn captured_sql(conn: &Connection, q: &Value, ctx: &QueryContext, raw: Raw) -> Result<Vec<Sql>, String> {
    captured_sql_as(conn, q, ctx, raw, Access::Content)
}

/// As `captured_sql`, for a reader with `access` (its SQL reads the masked views by their
/// plain names: run it on a connection pointed at them).
fn captured_sql_as(conn: &Connection, q: &Value, ctx: &QueryContext, raw: Raw, access: Access) -> Result<Vec<Sql>, String> {
    let parsed = query::model::parse(q, "")?;
    let settings = query::QuerySettings { rollups: raw == Raw::AsRun, access, ..query::QuerySettings::default() };
    let (result, sqls) = query::sql::capture(|| query::run(conn, &parsed, ctx, &settings));
    result.map_err(|e| e.to_string())?;
    Ok(sqls)
}

/// Runs statements straight in DuckDB: prepare, execute, fetch every Arrow batch.
pub fn run_raw(conn: &Connection, sqls: &[Sql]) -> Result<usize, String> {
    let mut rows = 0;
    for sql in sqls {
        let mut stmt = conn.prepare(&sql.text).map_err(|e| format!("preparing: {e}"))?;
        let arrow = stmt.query_arrow(duckdb::params_from_iter(sql.params.iter())).map_err(|e| format!("running: {e}"))?;
        rows += arrow.map(|b| b.num_rows()).sum::<usize>();
    }
    Ok(rows)
}

/// Opens the database file read-only, as the comparison needs nothing else.
/// The database as DuckDB alone opens it, with the store's memory limit, so the comparison
/// measures what the plugin adds, not what the limit costs.
pub fn open_raw(db: &Path) -> Result<Connection, String> {
    let config = duckdb::Config::default()
        .access_mode(duckdb::AccessMode::ReadOnly)
        .and_then(|c| c.enable_autoload_extension(false))
        .and_then(|c| c.max_memory(crate::store::DEFAULT_MEMORY_LIMIT))
        .map_err(|e| e.to_string())?;
    Connection::open_with_flags(db, config).map_err(|e| format!("opening {}: {e}", db.display()))
}

/// Times each query's SQL `runs` times (after one warm-up run).
pub fn raw_timings(conn: &Connection, queries: &[NamedQuery], ctx: &QueryContext, runs: usize, raw: Raw) -> Vec<Result<Timing, String>> {
    queries
        .iter()
        .map(|q| {
            let sqls = captured_sql(conn, &q.json, ctx, raw)?;
            run_raw(conn, &sqls)?;
            let mut t = Timing::default();
            for _ in 0..runs {
                let started = Instant::now();
                run_raw(conn, &sqls)?;
                t.push(started.elapsed());
            }
            Ok(t)
        })
        .collect()
}

/// All panels' SQL at once, one connection and thread per panel, as a dashboard refresh runs.
pub fn raw_dashboard(
    conn: &Connection,
    panels: &[NamedQuery],
    ctx: &QueryContext,
    runs: usize,
    raw: Raw,
    access: Access,
) -> Result<Timing, String> {
    let sqls = panels.iter().map(|q| captured_sql_as(conn, &q.json, ctx, raw, access)).collect::<Result<Vec<_>, _>>()?;
    crate::store::masked::apply(conn, Access::Content).map_err(|e| e.to_string())?;
    let mut t = Timing::default();
    for run in 0..=runs {
        let clone = || {
            let c = conn.try_clone().map_err(|e| e.to_string())?;
            crate::store::masked::apply(&c, access).map_err(|e| e.to_string())?;
            Ok::<_, String>(c)
        };
        let conns = sqls.iter().map(|_| clone()).collect::<Result<Vec<_>, _>>()?;
        let started = Instant::now();
        let results: Vec<Result<usize, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = conns.into_iter().zip(&sqls).map(|(c, s)| scope.spawn(move || run_raw(&c, s))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("panel thread panicked".into()))).collect()
        });
        let elapsed = started.elapsed();
        results.into_iter().collect::<Result<Vec<_>, _>>()?;
        if run > 0 {
            t.push(elapsed);
        }
    }
    Ok(t)
}

/// Rows of an Arrow IPC frame as the plugin returns it (0 for a frame without fields).
pub fn frame_rows(bytes: &[u8]) -> Result<usize, String> {
    let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| format!("frame: {e}"))?;
    let mut rows = 0;
    for batch in reader {
        rows += batch.map_err(|e| format!("frame: {e}"))?.num_rows();
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_panel_and_query_type_is_in_the_set_with_variables_resolved() {
        let ids = SampleIds { session_id: "s-1".into(), prompt_id: "p-1".into() };
        let overview = dashboard_panels(OVERVIEW, "overview panel", &ids).unwrap();
        let sessions = dashboard_panels(SESSIONS, "sessions panel", &ids).unwrap();
        assert_eq!((overview.len(), sessions.len()), (22, 11));
        let types = query_types(&ids);
        assert_eq!(types.len(), query::catalog::query_types().len());
        for q in overview.iter().chain(&sessions).chain(&types) {
            let text = q.json.to_string();
            assert!(!text.contains("${") && !text.contains("$session") && !text.contains("datasource"), "{text}");
            query::model::parse(&q.json, "").unwrap_or_else(|e| panic!("{}: {e}", q.name));
        }
        assert!(sessions.iter().any(|q| q.json["sessionId"] == "s-1"));
    }

    #[test]
    fn median_and_p95() {
        let t = Timing((1..=10).map(f64::from).collect());
        assert_eq!((t.median(), t.p95()), (5.5, 10.0));
        let t = Timing(vec![3.0, 1.0, 2.0]);
        assert_eq!((t.median(), t.p95()), (2.0, 3.0));
    }
}
