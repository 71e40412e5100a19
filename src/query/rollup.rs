//! Reading rollups (see `store::rollup`): a range is answered from the summaries of the hours it
//! covers whole and that are not dirty, and from the rows for the rest (its partial first and
//! last hours, hours being written). Both kinds of part have the rollup's columns; the caller
//! merges them with the merge aggregates, so the answer is the one the rows alone give.
use chrono::Duration;

use super::sql::Params;
use super::{QueryError, Runner};
use crate::store::rollup::{bin_value_sql, Rollup, HOUR_US};

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
    let mut parts = Vec::new();
    let interval = |column: &str, (a, b): (i64, i64), p: &mut Params| {
        format!("{column} >= make_timestamp({}) AND {column} < make_timestamp({})", p.bind(a), p.bind(b))
    };
    if !cov.summarised.is_empty() {
        let hours: Vec<String> = cov.summarised.iter().map(|r| format!("({})", interval("hour", *r, p))).collect();
        parts.push(format!("SELECT {} FROM {} WHERE {}", rollup.columns(), rollup.table, hours.join(" OR ")));
    }
    // one scan per interval, so each is pruned by the time order of the rows
    for &(a, b) in &cov.rows {
        let (a, b) = (format!("make_timestamp({})", p.bind(a)), format!("make_timestamp({})", p.bind(b)));
        parts.push(rollup.partial_select((&a, &b)));
    }
    if parts.is_empty() {
        parts.push(format!("SELECT {} FROM {} WHERE false", rollup.columns(), rollup.table));
    }
    parts.join("\nUNION ALL ")
}

/// Percentiles per `keys` from the histogram parts of a sketch rollup (`store::rollup::sketch`):
/// as `quantile_cont`, interpolating between the two order statistics around each rank, each
/// taken as its bin's value. `quantiles`: (q in [0, 1], result column).
pub fn quantiles_sql(parts: &str, keys: &[&str], quantiles: &[(f64, &str)], p: &mut Params) -> String {
    let keys = keys.join(", ");
    let columns: Vec<String> = quantiles
        .iter()
        .map(|(q, name)| {
            let q = p.bind(*q);
            let rank = format!("{q} * (total - 1)");
            // the bin holding the order statistic at rank floor / ceil, its value kept within
            // the values the bin holds
            let at = |edge: &str| {
                let holding = format!("FILTER (WHERE upto > {edge}({rank}))");
                format!(
                    "greatest(arg_min(lo, bin) {holding}, least(arg_min(hi, bin) {holding}, {}))",
                    bin_value_sql(&format!("min(bin) {holding}"))
                )
            };
            format!(
                "{lo} + ({q} * (any_value(total) - 1) - floor({q} * (any_value(total) - 1))) * ({hi} - {lo}) AS {name}",
                lo = at("floor"),
                hi = at("ceil"),
            )
        })
        .collect();
    format!(
        "SELECT {keys}, {columns}
    FROM (
        SELECT {keys}, bin, lo, hi,
            sum(n) OVER (PARTITION BY {keys} ORDER BY bin ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto,
            sum(n) OVER (PARTITION BY {keys}) AS total
        FROM (SELECT {keys}, bin, sum(n) AS n, min(lo) AS lo, max(hi) AS hi FROM ({parts}) GROUP BY ALL)
    )
    GROUP BY {keys}",
        columns = columns.join(",\n        ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR_US;

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
            "SELECT max(abs({value} - x) / x), count(*) FROM (SELECT pow(10, i / 1000.0) AS x FROM range(-3000, 8000) t(i))",
            value = bin_value_sql(&crate::store::rollup::bin_sql("x"))
        );
        let (worst, n): (f64, i64) = conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!(n, 11_000);
        assert!(worst <= crate::store::rollup::SKETCH_ALPHA * (1.0 + 1e-9), "{worst}");
        let zero: f64 =
            conn.query_row(&format!("SELECT {}", bin_value_sql(&crate::store::rollup::bin_sql("0.0"))), [], |r| r.get(0)).unwrap();
        assert_eq!(zero, 0.0);
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
    use crate::query::testing::{columns, frames_with};
    use crate::query::{QueryContext, QuerySettings};
    use crate::store::rollup::HOUR_US;

    /// Every query that reads rollups, as the dashboards make them.
    fn queries() -> Vec<Value> {
        vec![
            json!({"queryType": "repositories", "limit": 100000}),
            json!({"queryType": "fleet"}),
            json!({"queryType": "agents"}),
            json!({"queryType": "hooks"}),
            json!({"queryType": "tool_success_rate"}),
        ]
    }

    /// Percentiles from sketches: within their relative error of the exact ones.
    fn estimated(column: &str) -> bool {
        column.starts_with('p') && column.ends_with("_ms") && column[1..].starts_with(|c: char| c.is_ascii_digit())
    }

    fn ctx(from_us: i64, to_us: i64) -> QueryContext {
        QueryContext {
            from: DateTime::from_timestamp_micros(from_us).unwrap(),
            to: DateTime::from_timestamp_micros(to_us).unwrap(),
            interval_ms: 0,
            max_data_points: 1000,
            limits: Default::default(),
        }
    }

    fn same(column: &str, a: &Value, b: &Value) -> bool {
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

    /// Asserts both paths agree on every query and range; returns how many values were compared
    /// and how many answers read summary rows.
    async fn assert_same(state: &AppState, what: &str) -> (usize, usize) {
        let (min, max) = time_span(state).await;
        let (mut compared, mut summarised) = (0, 0);
        for (from, to) in ranges(min, max) {
            for q in queries() {
                let run =
                    |rollups: bool| frames_with(state, q.clone(), ctx(from, to), QuerySettings { rollups, ..QuerySettings::default() });
                let (with, without) = (run(true).await.unwrap(), run(false).await.unwrap());
                let sql = |f: &[crate::frame::Frame]| f[0].meta.executed_query_string.clone().unwrap_or_default();
                assert_ne!(sql(&with), sql(&without), "{what}: not the rollups' SQL");
                summarised += usize::from(sql(&with).contains(" WHERE (hour >= make_timestamp("));
                let (a, b) = (columns(&with[0]), columns(&without[0]));
                assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{what} {q}");
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
                "{drop_all} DROP TABLE rollup_dirty; DROP TABLE rollup_lock; DELETE FROM schema_version WHERE version = 5;"
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
