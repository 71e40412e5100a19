//! Reading rollups (see `store::rollup`): a range is answered from the summaries of the hours it
//! covers whole and that are not dirty, and from the rows for the rest (its partial first and
//! last hours, hours being written). Both kinds of part have the rollup's columns; the caller
//! merges them with the merge aggregates, so the answer is the one the rows alone give.
use std::collections::BTreeMap;

use chrono::Duration;

use super::sql::Params;
use super::table::Table;
use super::{QueryError, Runner};
use crate::store::rollup::{Rollup, HOUR_US};

/// Most separate runs of summarised hours one query reads; past it, the shortest are read from
/// the rows (each run is one more range condition).
const MAX_RUNS: usize = 16;

/// The dirty hours (µs) of a span, read inside the query's snapshot.
#[derive(Debug, Clone, Default)]
pub struct Dirty(Vec<i64>);

impl Dirty {
    pub fn read(r: &Runner, from_us: i64, to_us: i64) -> Result<Dirty, QueryError> {
        let mut p = Params::empty();
        let (a, b) = (p.bind(from_us.div_euclid(HOUR_US) * HOUR_US), p.bind(to_us));
        let sql = p.into_sql(format!(
            "SELECT DISTINCT epoch_us(hour) AS hour FROM rollup_dirty WHERE hour >= make_timestamp({a}) AND hour <= make_timestamp({b}) ORDER BY 1"
        ));
        let t = sql.run(r.conn)?;
        let hours = t.column("hour").map(|f| (0..t.rows()).filter_map(|i| f.number(i)).map(|x| x as i64).collect()).unwrap_or_default();
        Ok(Dirty(hours))
    }
}

/// Which part of `[from, to]` (µs, inclusive) comes from a rollup and which from the rows, as
/// half-open µs intervals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub summarised: Vec<(i64, i64)>,
    pub rows: Vec<(i64, i64)>,
}

impl Coverage {
    pub fn new(from_us: i64, to_us: i64, dirty: &Dirty) -> Coverage {
        if to_us < from_us {
            return Coverage { summarised: vec![], rows: vec![] };
        }
        let end = to_us.saturating_add(1);
        let first = from_us.div_euclid(HOUR_US) * HOUR_US + if from_us.rem_euclid(HOUR_US) == 0 { 0 } else { HOUR_US };
        let last = end.div_euclid(HOUR_US) * HOUR_US;
        let mut runs = Vec::new();
        let mut cursor = first;
        for &h in dirty.0.iter().filter(|h| **h >= first && **h < last) {
            if h > cursor {
                runs.push((cursor, h));
            }
            cursor = cursor.max(h + HOUR_US);
        }
        if cursor < last {
            runs.push((cursor, last));
        }
        if runs.len() > MAX_RUNS {
            let mut by_length = runs.clone();
            by_length.sort_by_key(|(a, b)| std::cmp::Reverse(b - a));
            let keep: Vec<_> = by_length.into_iter().take(MAX_RUNS).collect();
            runs.retain(|r| keep.contains(r));
        }
        let mut rows = Vec::new();
        let mut cursor = from_us;
        for &(a, b) in &runs {
            if a > cursor {
                rows.push((cursor, a));
            }
            cursor = b;
        }
        if cursor < end {
            rows.push((cursor, end));
        }
        Coverage { summarised: runs, rows }
    }

    /// Read for the query's range widened by `margin` on both sides.
    pub fn around(r: &Runner, dirty: &Dirty, margin: Duration) -> Coverage {
        let us = |t: chrono::DateTime<chrono::Utc>| t.timestamp_micros();
        Coverage::new(us(r.ctx.from - margin), us(r.ctx.to + margin), dirty)
    }
}

/// The parts of `rollup` covering `cov`: its summary rows of the summarised hours, then the rows'
/// summary of the rest (one row per key). Columns: the rollup's keys and values, unmerged.
pub fn parts_sql(rollup: &Rollup, cov: &Coverage, p: &mut Params) -> String {
    parts(rollup, cov, false, p)
}

/// As `parts_sql`, each row with its hour as `time` (the rows' summaries one row per hour and
/// key too): what a time series with buckets of whole hours groups.
pub fn hourly_parts_sql(rollup: &Rollup, cov: &Coverage, p: &mut Params) -> String {
    parts(rollup, cov, true, p)
}

fn parts(rollup: &Rollup, cov: &Coverage, hourly: bool, p: &mut Params) -> String {
    let mut parts = Vec::new();
    let interval = |column: &str, (a, b): (i64, i64), p: &mut Params| {
        format!("{column} >= make_timestamp({}) AND {column} < make_timestamp({})", p.bind(a), p.bind(b))
    };
    let columns = if hourly { format!("hour AS time, {}", rollup.columns()) } else { rollup.columns() };
    if !cov.summarised.is_empty() {
        let hours: Vec<String> = cov.summarised.iter().map(|r| format!("({})", interval("hour", *r, p))).collect();
        parts.push(format!("SELECT {columns} FROM {} WHERE {}", rollup.table, hours.join(" OR ")));
    }
    // one scan per interval, so each is pruned by the time order of the rows
    for &(a, b) in &cov.rows {
        let (a, b) = (format!("make_timestamp({})", p.bind(a)), format!("make_timestamp({})", p.bind(b)));
        parts.push(if hourly {
            format!("SELECT {columns} FROM ({})", rollup.build_select(Some((&a, &b))))
        } else {
            rollup.partial_select((&a, &b))
        });
    }
    if parts.is_empty() {
        parts.push(format!("SELECT {columns} FROM {} WHERE false", rollup.table));
    }
    parts.join("\nUNION ALL ")
}

/// Whether time series buckets of `bucket_us` can be summed from whole hours (the buckets are
/// aligned to the epoch, so each hour falls into exactly one).
pub fn whole_hours(bucket_us: i64) -> bool {
    bucket_us > 0 && bucket_us % HOUR_US == 0
}

/// The coverage of the query's range (read inside its snapshot).
pub fn coverage(r: &Runner) -> Result<Coverage, QueryError> {
    coverage_of(r, r.ctx.from.timestamp_micros(), r.ctx.to.timestamp_micros())
}

/// The coverage of `[from_us, to_us]`.
pub fn coverage_of(r: &Runner, from_us: i64, to_us: i64) -> Result<Coverage, QueryError> {
    let dirty = Dirty::read(r, from_us, to_us)?;
    Ok(Coverage::new(from_us, to_us, &dirty))
}

/// Percentiles per `keys` (text key columns) of a sketch rollup (`store::rollup::sketch`) over
/// `cov`: its histograms merged per key in SQL, the percentiles computed from them here
/// (`histogram_quantiles`), given back as a SELECT of literal rows bound into `p` (columns: the
/// keys, then the quantiles' names). `quantiles`: (q in [0, 1], result column).
pub fn quantiles_select(
    r: &Runner,
    sketch: &Rollup,
    cov: &Coverage,
    keys: &[&str],
    quantiles: &[(f64, &str)],
    p: &mut Params,
) -> Result<String, QueryError> {
    let mut hp = Params::empty();
    let parts = parts_sql(sketch, cov, &mut hp);
    let k = keys.join(", ");
    let sql = hp.into_sql(format!("SELECT {k}, bin, sum(n)::BIGINT AS n, min(lo) AS lo, max(hi) AS hi FROM ({parts}) GROUP BY ALL"));
    let t = sql.run(r.conn)?;
    let qs: Vec<f64> = quantiles.iter().map(|(q, _)| *q).collect();
    let mut rows = Vec::new();
    for (k, bins) in histograms(&t, keys)? {
        let values = histogram_quantiles(&bins, &qs);
        let mut cells = Vec::new();
        for v in &k {
            cells.push(format!("{}::VARCHAR", v.as_deref().map_or("NULL".to_string(), |v| p.bind(v))));
        }
        for v in &values {
            cells.push(format!("{}::DOUBLE", v.map_or("NULL".to_string(), |v| p.bind(v))));
        }
        rows.push(format!("({})", cells.join(", ")));
    }
    let names: Vec<&str> = keys.iter().copied().chain(quantiles.iter().map(|(_, name)| *name)).collect();
    if rows.is_empty() {
        let nulls: Vec<String> = keys
            .iter()
            .map(|k| format!("NULL::VARCHAR AS {k}"))
            .chain(quantiles.iter().map(|(_, name)| format!("NULL::DOUBLE AS {name}")))
            .collect();
        return Ok(format!("SELECT {} WHERE false", nulls.join(", ")));
    }
    Ok(format!("SELECT * FROM (VALUES {}) AS q({})", rows.join(", "), names.join(", ")))
}

/// Key of a merged histogram: its key columns' values as text (numbers as integers).
pub type HistogramKey = Vec<Option<String>>;

/// The merged histograms of a result with the key columns `keys`, `bin`, `n`, `lo` and `hi`
/// (one row per key and bin, in any order): per key, its bins in ascending order.
pub fn histograms(t: &Table, keys: &[&str]) -> Result<BTreeMap<HistogramKey, Vec<Bin>>, QueryError> {
    /// One key cell, borrowed from the result: grouping allocates nothing per row.
    #[derive(Clone, Copy, PartialEq, Eq, Hash)]
    enum Cell<'a> {
        Number(i64),
        Text(&'a str),
        Null,
    }
    const MAX_KEYS: usize = 3;
    if keys.len() > MAX_KEYS {
        return Err(QueryError::Failed(format!("histogram: at most {MAX_KEYS} keys")));
    }
    let col = |name: &str| t.column(name).ok_or_else(|| QueryError::Failed(format!("histogram: no column {name}")));
    let key_fields = keys.iter().map(|k| col(k)).collect::<Result<Vec<_>, _>>()?;
    let (bin, n, lo, hi) = (col("bin")?, col("n")?, col("lo")?, col("hi")?);
    let mut groups: std::collections::HashMap<[Cell; MAX_KEYS], Vec<Bin>> = Default::default();
    for i in 0..t.rows() {
        let mut key = [Cell::Null; MAX_KEYS];
        for (cell, f) in key.iter_mut().zip(&key_fields) {
            *cell = match f.kind() {
                crate::frame::Kind::Number => f.number(i).map_or(Cell::Null, |x| Cell::Number(x as i64)),
                _ => f.text(i).map_or(Cell::Null, Cell::Text),
            };
        }
        groups.entry(key).or_default().push(Bin {
            bin: bin.number(i).unwrap_or(0.0) as i32,
            n: n.number(i).unwrap_or(0.0) as i64,
            lo: lo.number(i).unwrap_or(f64::NAN),
            hi: hi.number(i).unwrap_or(f64::NAN),
        });
    }
    Ok(groups
        .into_iter()
        .map(|(key, mut bins)| {
            bins.sort_unstable_by_key(|b| b.bin);
            let key = key[..keys.len()]
                .iter()
                .map(|c| match c {
                    Cell::Number(x) => Some(x.to_string()),
                    Cell::Text(t) => Some(t.to_string()),
                    Cell::Null => None,
                })
                .collect();
            (key, bins)
        })
        .collect())
}

/// The value a sketch bin stands for: `2γ^bin / (γ + 1)` (see `store::rollup::SKETCH_ALPHA`).
pub fn bin_value(bin: i32) -> f64 {
    if bin == crate::store::rollup::ZERO_BIN {
        return 0.0;
    }
    let gamma = (1.0 + crate::store::rollup::SKETCH_ALPHA) / (1.0 - crate::store::rollup::SKETCH_ALPHA);
    2.0 * (f64::from(bin) * gamma.ln()).exp() / (gamma + 1.0)
}

/// One bin of a merged histogram: its count and the smallest and largest value it holds.
#[derive(Debug, Clone, Copy)]
pub struct Bin {
    pub bin: i32,
    pub n: i64,
    pub lo: f64,
    pub hi: f64,
}

/// The percentiles `qs` (in [0, 1]) of one merged histogram with its bins in ascending order,
/// as `quantiles_sql` computes them (interpolating between the order statistics around each
/// rank, each its bin's value kept within the values the bin holds); `None` when it is empty.
pub fn histogram_quantiles(bins: &[Bin], qs: &[f64]) -> Vec<Option<f64>> {
    let total: i64 = bins.iter().map(|b| b.n).sum();
    if total <= 0 {
        return vec![None; qs.len()];
    }
    // the value of the order statistic at `rank` (0-based)
    let at = |rank: i64| {
        let mut upto = 0;
        for b in bins {
            upto += b.n;
            if upto > rank {
                return bin_value(b.bin).min(b.hi).max(b.lo);
            }
        }
        bins.last().map_or(f64::NAN, |b| b.hi)
    };
    qs.iter()
        .map(|q| {
            let rank = q * (total - 1) as f64;
            let (below, above) = (at(rank.floor() as i64), at(rank.ceil() as i64));
            Some(below + (rank - rank.floor()) * (above - below))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR_US;

    /// Percentiles from a histogram are within α of `quantile_cont` over the values (relative),
    /// and exact where the bins around a rank hold one value each; the zero bin gives 0.
    #[test]
    fn histogram_quantiles_are_within_alpha_of_the_exact_ones() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        let alpha = crate::store::rollup::SKETCH_ALPHA;
        let values = [0.0, 0.0, 3.0, 7.5, 7.6, 7.7, 120.0, 5000.0, 5001.0, 5002.0, 5003.0, 1e6];
        let list = values.iter().map(|v| format!("({v})")).collect::<Vec<_>>().join(", ");
        let bin = crate::store::rollup::bin_sql("x");
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {bin} AS bin, count(*) AS n, min(x) AS lo, max(x) AS hi FROM (VALUES {list}) t(x) GROUP BY ALL ORDER BY bin"
            ))
            .unwrap();
        let bins: Vec<Bin> = stmt
            .query_map([], |r| Ok(Bin { bin: r.get(0)?, n: r.get(1)?, lo: r.get(2)?, hi: r.get(3)? }))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let qs = [0.0, 0.1, 0.2, 0.5, 0.77, 0.95, 0.99, 1.0];
        let estimates = histogram_quantiles(&bins, &qs);
        for (q, estimate) in qs.iter().zip(&estimates) {
            let exact: f64 = conn.query_row(&format!("SELECT quantile_cont(x, {q}) FROM (VALUES {list}) t(x)"), [], |r| r.get(0)).unwrap();
            let estimate = estimate.unwrap();
            assert!((estimate - exact).abs() <= alpha * exact.abs() + 1e-12, "q {q}: {estimate} against {exact}");
        }
        // ranks 0 and 1 fall in the zero bin; the top rank in a bin of one value
        assert_eq!((estimates[0], estimates[7]), (Some(0.0), Some(1e6)));
        assert_eq!(histogram_quantiles(&[], &[0.5]), [None]);
    }

    #[test]
    fn whole_clean_hours_come_from_the_rollup_and_the_rest_from_the_rows() {
        // 00:30 to 05:15 (inclusive), hour 2 dirty
        let c = Coverage::new(H / 2, 5 * H + H / 4, &Dirty(vec![2 * H]));
        assert_eq!(c.summarised, vec![(H, 2 * H), (3 * H, 5 * H)]);
        assert_eq!(c.rows, vec![(H / 2, H), (2 * H, 3 * H), (5 * H, 5 * H + H / 4 + 1)]);
        // aligned bounds: nothing from the rows
        let c = Coverage::new(0, 3 * H - 1, &Dirty::default());
        assert_eq!((c.summarised, c.rows), (vec![(0, 3 * H)], vec![]));
        // shorter than an hour: rows only
        let c = Coverage::new(H / 4, H / 2, &Dirty::default());
        assert_eq!((c.summarised, c.rows), (vec![], vec![(H / 4, H / 2 + 1)]));
    }

    /// Every value lands in a bin that stands for it within α, from 1 µs to a day in ms.
    #[test]
    fn sketch_bins_stand_for_their_values_within_alpha() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        let sql = format!(
            "SELECT x, {bin} FROM (SELECT pow(10, i / 1000.0) AS x FROM range(-3000, 8000) t(i)) UNION ALL SELECT 0.0, {zero}",
            bin = crate::store::rollup::bin_sql("x"),
            zero = crate::store::rollup::bin_sql("0.0")
        );
        let mut stmt = conn.prepare(&sql).unwrap();
        let bins: Vec<(f64, i32)> = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
        assert_eq!(bins.len(), 11_001);
        for (x, bin) in bins {
            let value = bin_value(bin);
            if x == 0.0 {
                assert_eq!(value, 0.0);
            } else {
                assert!((value - x).abs() / x <= crate::store::rollup::SKETCH_ALPHA * (1.0 + 1e-9), "{x}: {value}");
            }
        }
    }

    #[test]
    fn too_many_runs_read_the_shortest_from_the_rows() {
        let dirty: Vec<i64> = (0..40).map(|i| (2 * i + 1) * H).collect();
        let c = Coverage::new(0, 80 * H - 1, &Dirty(dirty));
        assert_eq!(c.summarised.len(), MAX_RUNS);
        let covered: i64 = c.summarised.iter().chain(&c.rows).map(|(a, b)| b - a).sum();
        assert_eq!(covered, 80 * H);
    }
}

/// Rollup answers against the rows' answers for the same queries: on the captures (both Claude
/// Code versions, cumulative metrics, imported history, repository keys) and on generated data,
/// over ranges that cut through hours, after retention, re-sent exports, a restart and the
/// migration of a file that had no rollups.
#[cfg(test)]
mod equal_to_rows {
    use chrono::DateTime;
    use serde_json::{json, Value};

    use crate::app::AppState;
    use crate::query::testing::frames_with;
    use crate::query::{QueryContext, QuerySettings};
    use crate::store::rollup::HOUR_US;

    /// Every query that reads rollups, as the dashboards make them and beyond.
    fn queries() -> Vec<Value> {
        let mut all = vec![
            json!({"queryType": "repositories", "limit": 100000}),
            json!({"queryType": "fleet"}),
            json!({"queryType": "agents"}),
            json!({"queryType": "hooks"}),
            json!({"queryType": "tool_success_rate"}),
            json!({"queryType": "sessions", "limit": 100000}),
            json!({"queryType": "sessions", "limit": 2}),
            json!({"queryType": "cost_by_model", "format": "table"}),
            json!({"queryType": "cost_by_model"}),
            json!({"queryType": "productivity"}),
            json!({"queryType": "productivity", "groupBy": "model"}),
            json!({"queryType": "productivity", "groupBy": "team"}),
            json!({"queryType": "productivity", "groupBy": "query_class"}),
            json!({"queryType": "api_latency", "percentiles": [50, 95], "latencies": ["duration", "ttft"]}),
            json!({"queryType": "api_latency", "percentiles": [50, 95, 99], "latencies": ["duration", "ttft"], "groupBy": "model"}),
            json!({"queryType": "api_errors", "byStatusCode": false}),
            json!({"queryType": "api_errors", "byStatusCode": true}),
            json!({"queryType": "api_errors", "format": "table"}),
        ];
        for measure in ["cost", "active_sessions", "tokens", "cache_hit_ratio", "sessions", "subagent_cost", "lines_added", "active_time"] {
            all.push(json!({"queryType": "stat", "measure": measure, "compare": "previous_period"}));
        }
        all.push(json!({"queryType": "stat", "measure": "active_sessions", "source": "events"}));
        for (measure, group) in [
            ("cost", "model"),
            ("cost", "team"),
            ("cost", "project"),
            ("cost", "repository"),
            ("tokens", "repository"),
            ("cost", "query_class"),
            ("tokens", "type"),
            ("input_tokens", "model"),
            ("cache_hit_ratio", "team"),
            ("commits", "metric.name"),
        ] {
            for (format, limit) in [("table", 8), ("time_series", 0), ("time_series", 1)] {
                all.push(json!({"queryType": "breakdown", "measure": measure, "groupBy": group, "format": format, "limit": limit}));
            }
        }
        all
    }

    /// Whether a query answers with time series (its buckets follow the interval).
    fn series(q: &Value) -> bool {
        let typed = matches!(q["queryType"].as_str(), Some("breakdown" | "cost_by_model" | "api_latency" | "api_errors"));
        typed && q["format"].as_str() != Some("table")
    }

    /// Queries of one session (a dashboard's session variable): the span holding its rows is
    /// looked up in the rollups.
    fn session_queries(session: &str) -> Vec<Value> {
        let sessions = json!([session]);
        vec![
            json!({"queryType": "session_timeline", "sessionId": session}),
            json!({"queryType": "breakdown", "measure": "events", "source": "events", "groupBy": "event.name", "limit": 0, "sessions": sessions}),
            json!({"queryType": "cost_by_model", "source": "events", "format": "table", "sessions": sessions}),
            json!({"queryType": "prompts", "limit": 100, "sessions": sessions}),
            json!({"queryType": "logs", "limit": 1000, "sessions": sessions}),
            json!({"queryType": "tool_decisions", "sessions": sessions}),
            json!({"queryType": "tool_success_rate", "sessions": sessions}),
            json!({"queryType": "sessions", "sessions": sessions}),
            json!({"queryType": "stat", "measure": "cost", "sessions": sessions}),
            json!({"queryType": "productivity", "sessions": sessions}),
        ]
    }

    /// Percentiles from sketches: within their relative error of the exact ones.
    fn estimated(column: &str) -> bool {
        column.starts_with('p') && column.ends_with("_ms") && column[1..].starts_with(|c: char| c.is_ascii_digit())
    }

    fn ctx(from_us: i64, to_us: i64, interval_ms: i64) -> QueryContext {
        QueryContext {
            from: DateTime::from_timestamp_micros(from_us).unwrap(),
            to: DateTime::from_timestamp_micros(to_us).unwrap(),
            interval_ms,
            max_data_points: 1000,
            limits: Default::default(),
        }
    }

    /// A frame's values per field, each field named with its labels (series have one field per
    /// label set under the same name).
    fn labelled(frame: &crate::frame::Frame) -> std::collections::BTreeMap<String, Vec<Value>> {
        frame.fields.iter().map(|f| (format!("{}{:?}", f.name, f.labels), crate::query::testing::values(f))).collect()
    }

    fn same(column: &str, a: &Value, b: &Value) -> bool {
        let column = column.split('{').next().unwrap_or(column);
        match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) if estimated(column) => (x - y).abs() <= crate::store::rollup::SKETCH_ALPHA * y.abs() + 1e-9,
            // sums of doubles in another order: equal to the last bits
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => a == b,
        }
    }

    async fn time_span(state: &AppState) -> (i64, i64) {
        let store = state.store().unwrap();
        store
            .read(|c| {
                Ok(c.query_row(
                    "SELECT epoch_us(min(t)), epoch_us(max(t)) FROM (SELECT time AS t FROM events UNION ALL SELECT time FROM metric_points)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .await
            .unwrap()
    }

    /// Ranges over the data: all of it, hour-aligned, cut inside hours, one µs off the ends.
    fn ranges(min: i64, max: i64) -> Vec<(i64, i64)> {
        let mid = min + (max - min) / 2;
        let hour = |t: i64| t.div_euclid(HOUR_US) * HOUR_US;
        vec![
            (min - 10 * HOUR_US, max + 10 * HOUR_US),
            (hour(min), hour(max) + HOUR_US - 1),
            (min, mid),
            (mid, max),
            (min + 1, max - 1),
            (hour(mid) - HOUR_US / 3, hour(mid) + HOUR_US + HOUR_US / 3),
            (hour(min) + 7 * 60_000_000, hour(min) + 20 * 60_000_000),
        ]
    }

    /// The first session of the data (by id).
    async fn a_session(state: &AppState) -> String {
        let store = state.store().unwrap();
        store.read(|c| Ok(c.query_row("SELECT min(session_id) FROM events WHERE session_id IS NOT NULL", [], |r| r.get(0))?)).await.unwrap()
    }

    /// Asserts both paths agree on every query and range (with buckets of minutes and of whole
    /// hours); returns how many values were compared and how many answers read summary rows.
    async fn assert_same(state: &AppState, what: &str) -> (usize, usize) {
        let (min, max) = time_span(state).await;
        let session = a_session(state).await;
        let (mut compared, mut summarised) = (0, 0);
        for (from, to) in ranges(min, max) {
            for interval_ms in [0, 3_600_000] {
                // tables do not depend on the interval; series read rollups with whole hours only
                let wanted = |q: &Value| series(q) == (interval_ms > 0);
                for q in queries().into_iter().chain(session_queries(&session)).filter(wanted) {
                    let run = |rollups: bool| {
                        frames_with(state, q.clone(), ctx(from, to, interval_ms), QuerySettings { rollups, ..QuerySettings::default() })
                    };
                    let (with, without) = (run(true).await.unwrap(), run(false).await.unwrap());
                    assert_eq!(with.len(), without.len(), "{what} {q}");
                    let Some(first) = with.first() else { continue };
                    let sql = first.meta.executed_query_string.clone().unwrap_or_default();
                    summarised += usize::from(sql.contains(" WHERE (hour >= make_timestamp("));
                    for (with, without) in with.iter().zip(&without) {
                        let (a, b) = (labelled(with), labelled(without));
                        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{what} {q} [{from}, {to}]");
                        for (name, values) in &a {
                            let rows = &b[name];
                            assert_eq!(values.len(), rows.len(), "{what} {q} [{from}, {to}] {name}");
                            for (i, (x, y)) in values.iter().zip(rows).enumerate() {
                                assert!(same(name, x, y), "{what} {q} [{from}, {to}] {name}[{i}]: rollups {x}, rows {y}");
                                compared += 1;
                            }
                        }
                    }
                }
            }
        }
        (compared, summarised)
    }

    async fn dirty_and_summary_rows(state: &AppState) -> (i64, i64) {
        state
            .store()
            .unwrap()
            .read(|c| {
                Ok(c.query_row("SELECT (SELECT count(*) FROM rollup_dirty), (SELECT count(*) FROM rollup_session_events)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?)
            })
            .await
            .unwrap()
    }

    fn captures() -> Vec<crate::test_fixtures::Fixture> {
        use crate::test_fixtures::{fixtures, fixtures_v332, transcript_run};
        let mut all: Vec<_> = fixtures().into_iter().filter(|f| f.protocol == "grpc").collect();
        all.extend(fixtures_v332().into_iter().filter(|f| f.protocol == "grpc"));
        all.extend(transcript_run("tools-repo-2.1.332"));
        all.extend(transcript_run("subagent-2.1.332"));
        all
    }

    async fn import_transcripts(state: &AppState) {
        let dir = crate::test_fixtures::transcripts_dir().join("multi-2.1.332").join("projects");
        let files = crate::test_fixtures::jsonl_files(&dir);
        let (calls, _) = crate::import::read_transcripts(&files, None);
        assert!(!calls.is_empty());
        let request = crate::ingest::transcript::ImportRequest { calls, ..Default::default() };
        state.ingest.import(request).await.unwrap();
    }

    #[tokio::test]
    async fn on_the_captures_before_and_after_the_rollups_are_built() {
        let (state, _dir) = crate::ingest::testing::state_with(&captures()).await;
        import_transcripts(&state).await;
        // before the writer rebuilt anything every hour is dirty: the rows answer through the
        // same SQL
        assert!(dirty_and_summary_rows(&state).await.0 > 0);
        let (compared, _) = assert_same(&state, "dirty").await;
        assert!(compared > 500, "{compared}");
        state.store().unwrap().settle_rollups().await.unwrap();
        let (dirty, summaries) = dirty_and_summary_rows(&state).await;
        assert_eq!(dirty, 0);
        assert!(summaries > 0);
        let (_, summarised) = assert_same(&state, "built").await;
        assert!(summarised >= 3, "{summarised}");

        // an identical re-send adds nothing, to the rows or the rollups
        let again = &captures()[0..4];
        for f in again {
            let encoding =
                if f.file.ends_with(".json") { crate::ingest::decode::Encoding::Json } else { crate::ingest::decode::Encoding::Protobuf };
            let signal = crate::ingest::testing::signal(f);
            state.ingest.export_body(signal, encoding, &f.body(), false, crate::ingest::testing::ORIGIN).await.unwrap();
        }
        state.store().unwrap().settle_rollups().await.unwrap();
        assert_same(&state, "re-sent").await;

        // retention cutting through an hour of data
        let (min, max) = time_span(&state).await;
        let cut = min + (max - min) / 3 + 1234;
        let day = 86_400_000_000;
        let pruned = state.store().unwrap().maintain(move |c| crate::store::retention::prune(c, cut + day, 1)).await.unwrap();
        assert!(pruned.total() > 0);
        assert!(dirty_and_summary_rows(&state).await.0 > 0, "the hour cut through is dirty");
        assert_same(&state, "pruned, before the rebuild").await;
        state.store().unwrap().settle_rollups().await.unwrap();
        assert_same(&state, "pruned").await;
    }

    /// A new state on the data directory `dir` (the file as the previous one left it).
    async fn reopen(dir: &std::path::Path) -> std::sync::Arc<AppState> {
        let config = crate::config::Config::standalone(Some(dir.to_path_buf()), None, None);
        let state = AppState::new(config);
        state.open_store().await.expect("store reopens");
        state
    }

    #[tokio::test]
    async fn after_a_restart_and_the_migration_of_a_file_without_rollups() {
        let (state, dir) = crate::ingest::testing::state_with(&captures()).await;
        state.store().unwrap().settle_rollups().await.unwrap();
        let before = assert_same(&state, "before the restart").await;
        state.store.close().await;
        drop(state);

        let state = reopen(dir.path()).await;
        assert_eq!(assert_same(&state, "restarted").await, before);
        state.store.close().await;
        drop(state);

        // as a v4 file: no rollup tables
        {
            let conn = duckdb::Connection::open(dir.path().join(crate::store::DB_FILE)).unwrap();
            let drop_all: String = crate::store::rollup::all().iter().map(|r| format!("DROP TABLE {};", r.table)).collect();
            conn.execute_batch(&format!(
                "{drop_all} DROP TABLE rollup_dirty; DROP TABLE rollup_lock; DELETE FROM schema_version WHERE version >= 5;"
            ))
            .unwrap();
        }
        let state = reopen(dir.path()).await;
        let (dirty, summaries) = dirty_and_summary_rows(&state).await;
        assert_eq!(dirty, 0, "the migration builds every hour");
        assert!(summaries > 0);
        assert_eq!(assert_same(&state, "migrated").await, before);
    }

    /// Without being asked, the writer rebuilds the hours written into once they are quiet.
    #[tokio::test]
    async fn the_writer_rebuilds_quiet_hours_by_itself() {
        let (state, _dir) = crate::ingest::testing::state_with(&captures()).await;
        let started = std::time::Instant::now();
        loop {
            let health = state.store().unwrap().health().await.unwrap();
            if health.rollup_dirty_hours == 0 {
                break;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(60), "{} hours still dirty", health.rollup_dirty_hours);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(dirty_and_summary_rows(&state).await.1 > 0);
    }

    #[tokio::test]
    async fn on_generated_data_over_days() {
        use prost::Message;
        let (state, _dir) = crate::ingest::testing::state_with(&[]).await;
        let population = crate::bench::generate::Population {
            seed: 7,
            users: 30,
            span_seconds: 3 * 86_400,
            ..crate::bench::generate::Population::default()
        };
        let mut generator = crate::bench::generate::Generator::new(population);
        let sessions = generator.sessions_with_events(4000);
        for s in &sessions {
            for (signal, body) in [
                (crate::ingest::decode::Signal::Logs, s.logs.encode_to_vec()),
                (crate::ingest::decode::Signal::Metrics, s.metrics.encode_to_vec()),
            ] {
                let outcome = state
                    .ingest
                    .export_body(signal, crate::ingest::decode::Encoding::Protobuf, &body, false, crate::ingest::testing::ORIGIN)
                    .await
                    .unwrap();
                assert_eq!(outcome.rejected, 0);
            }
        }
        state.store().unwrap().settle_rollups().await.unwrap();
        let (compared, summarised) = assert_same(&state, "generated").await;
        assert!(compared > 500 && summarised >= 5, "{compared} {summarised}");
    }
}
