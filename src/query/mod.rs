//! Typed queries → parameterized SQL → result tables → Grafana frames.
pub mod frames;
pub mod model;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use duckdb::types::{TimeUnit, Value};
use duckdb::Connection;
use grafana_plugin_sdk::data::{Field, Frame, IntoOptField, Metadata, VisType};

use frames::Table;
use model::{CostByModelQuery, CostSource, Query, SessionTimelineQuery, SessionsQuery};

/// Everything of a DataQuery besides its JSON.
#[derive(Debug, Clone, Copy)]
pub struct QueryContext {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Bucket width for time series, in ms (Grafana's `intervalMs`; 0 = derive from the range).
    pub interval_ms: i64,
    pub max_data_points: i64,
}

impl QueryContext {
    /// The bucket width in µs: Grafana's interval, widened so at most `max_data_points` (≤ 10 000)
    /// buckets cover the range, and at least one second.
    pub fn bucket_us(&self) -> i64 {
        let range_us = (self.to - self.from).num_microseconds().unwrap_or(i64::MAX).max(1);
        let points = if self.max_data_points > 0 { self.max_data_points.min(10_000) } else { 1_000 };
        let min_for_points = range_us / points;
        (self.interval_ms.max(0) * 1_000).max(min_for_points).max(1_000_000)
    }

    fn range_start(&self) -> Value {
        Value::Timestamp(TimeUnit::Microsecond, self.from.timestamp_micros())
    }
    fn range_end(&self) -> Value {
        Value::Timestamp(TimeUnit::Microsecond, self.to.timestamp_micros())
    }
}

/// A query's SQL with its parameters, kept together for the query inspector.
struct Sql {
    text: String,
    params: Vec<Value>,
}

impl Sql {
    fn run(&self, conn: &Connection) -> Result<Table, String> {
        let mut stmt = conn.prepare(&self.text).map_err(|e| format!("preparing query: {e}"))?;
        let arrow = stmt.query_arrow(duckdb::params_from_iter(self.params.iter())).map_err(|e| format!("running query: {e}"))?;
        let schema = arrow.get_schema();
        let batches: Vec<_> = arrow.collect();
        Table::from_batches(&schema, &batches)
    }

    /// SQL and parameter values as the query inspector shows them.
    fn describe(&self) -> String {
        let params: Vec<String> = self.params.iter().map(describe_value).collect();
        format!("{}\n-- parameters: [{}]", self.text.trim(), params.join(", "))
    }
}

fn describe_value(v: &Value) -> String {
    match v {
        Value::Timestamp(_, us) => DateTime::from_timestamp_micros(*us).map(|t| format!("'{}'", t.to_rfc3339())).unwrap_or_default(),
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Value::BigInt(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

/// Runs a query on a reader connection and returns its frames (blocking).
pub fn run(conn: &Connection, query: &Query, ctx: &QueryContext) -> Result<Vec<Frame>, String> {
    match query {
        Query::Sessions(q) => table_frame(conn, "sessions", sessions_sql(q, ctx)),
        Query::SessionTimeline(q) => table_frame(conn, "session_timeline", timeline_sql(q, ctx)),
        Query::CostByModel(q) => cost_by_model(conn, q, ctx),
        Query::ToolSuccessRate(_) => table_frame(conn, "tool_success_rate", tool_success_sql(ctx)),
    }
}

fn meta(sql: &Sql, vis: Option<VisType>) -> Metadata {
    let mut m = Metadata::default();
    m.executed_query_string = Some(sql.describe());
    m.preferred_visualisation = vis;
    m
}

/// A table frame of the whole result; an empty result is a frame without fields ("no data").
fn table_frame(conn: &Connection, name: &str, sql: Sql) -> Result<Vec<Frame>, String> {
    let table = sql.run(conn)?;
    let mut frame = Frame::new(name).with_metadata(meta(&sql, Some(VisType::Table)));
    if table.rows() > 0 {
        frame = frame.with_fields(table.into_fields());
    }
    Ok(vec![frame])
}

fn range_params(ctx: &QueryContext) -> Vec<Value> {
    vec![ctx.range_start(), ctx.range_end()]
}

fn sessions_sql(q: &SessionsQuery, ctx: &QueryContext) -> Sql {
    let text = "
WITH ev AS (
    SELECT session_id,
        any_value(user_id) AS user_id,
        min(time) AS first_seen,
        max(time) AS last_seen,
        count(DISTINCT prompt_id) AS prompts,
        count(*) FILTER (WHERE event_name = 'api_request') AS api_calls,
        sum(cost_usd) FILTER (WHERE event_name = 'api_request') AS cost_usd,
        sum(input_tokens) FILTER (WHERE event_name = 'api_request') AS input_tokens,
        sum(output_tokens) FILTER (WHERE event_name = 'api_request') AS output_tokens,
        sum(cache_read_tokens) FILTER (WHERE event_name = 'api_request') AS cache_read_tokens,
        sum(cache_creation_tokens) FILTER (WHERE event_name = 'api_request') AS cache_creation_tokens,
        count(*) FILTER (WHERE event_name = 'tool_result') AS tool_calls,
        count(*) FILTER (WHERE event_name = 'tool_result' AND success = false) AS tool_failures,
        count(*) FILTER (WHERE event_name = 'api_error') AS api_errors,
        count(*) AS events,
        any_value(app_version) AS app_version,
        any_value(terminal_type) AS terminal_type,
        any_value(resource) AS resource
    FROM events
    WHERE time BETWEEN $1 AND $2 AND session_id IS NOT NULL
    GROUP BY session_id
), m AS (
    SELECT session_id,
        any_value(user_id) AS user_id,
        min(coalesce(start_time, time)) AS first_seen,
        max(time) AS last_seen,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.cost.usage') AS cost_usd,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.token.usage' AND type = 'input') AS input_tokens,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.token.usage' AND type = 'output') AS output_tokens,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.token.usage' AND type = 'cacheRead') AS cache_read_tokens,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.token.usage' AND type = 'cacheCreation') AS cache_creation_tokens,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.lines_of_code.count' AND type = 'added') AS lines_added,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.lines_of_code.count' AND type = 'removed') AS lines_removed,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.commit.count') AS commits,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.pull_request.count') AS pull_requests,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.active_time.total') AS active_time_s,
        any_value(app_version) AS app_version,
        any_value(terminal_type) AS terminal_type,
        any_value(resource) AS resource
    FROM metric_points
    WHERE time BETWEEN $1 AND $2 AND session_id IS NOT NULL
    GROUP BY session_id
), s AS (
    SELECT session_id,
        coalesce(ev.user_id, m.user_id) AS user_id,
        least(ev.first_seen, m.first_seen) AS first_seen,
        greatest(ev.last_seen, m.last_seen) AS last_seen,
        coalesce(ev.prompts, 0) AS prompts,
        coalesce(ev.api_calls, 0) AS api_calls,
        -- per-request events when the logs exporter is on, else the metrics
        coalesce(ev.cost_usd, m.cost_usd, 0)::DOUBLE AS cost_usd,
        round(coalesce(ev.input_tokens, m.input_tokens, 0))::BIGINT AS input_tokens,
        round(coalesce(ev.output_tokens, m.output_tokens, 0))::BIGINT AS output_tokens,
        round(coalesce(ev.cache_read_tokens, m.cache_read_tokens, 0))::BIGINT AS cache_read_tokens,
        round(coalesce(ev.cache_creation_tokens, m.cache_creation_tokens, 0))::BIGINT AS cache_creation_tokens,
        coalesce(ev.tool_calls, 0) AS tool_calls,
        coalesce(ev.tool_failures, 0) AS tool_failures,
        coalesce(ev.api_errors, 0) AS api_errors,
        coalesce(ev.events, 0) AS events,
        round(coalesce(m.lines_added, 0))::BIGINT AS lines_added,
        round(coalesce(m.lines_removed, 0))::BIGINT AS lines_removed,
        round(coalesce(m.commits, 0))::BIGINT AS commits,
        round(coalesce(m.pull_requests, 0))::BIGINT AS pull_requests,
        coalesce(m.active_time_s, 0)::DOUBLE AS active_time_s,
        coalesce(ev.app_version, m.app_version) AS app_version,
        coalesce(ev.terminal_type, m.terminal_type) AS terminal_type,
        coalesce(ev.resource, m.resource) AS resource
    FROM ev FULL OUTER JOIN m USING (session_id)
)
SELECT session_id, user_id,
    json_extract_string(resource, '$.team') AS team,
    first_seen, last_seen,
    (epoch_ms(last_seen) - epoch_ms(first_seen))::DOUBLE AS duration_ms,
    prompts, api_calls, cost_usd,
    input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens AS tokens,
    input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
    tool_calls, tool_failures, api_errors, events,
    lines_added, lines_removed, commits, pull_requests, active_time_s,
    app_version, terminal_type,
    resource::VARCHAR AS resource
FROM s
ORDER BY last_seen DESC, session_id
LIMIT $3";
    let mut params = range_params(ctx);
    params.push(Value::BigInt(i64::from(q.limit)));
    Sql { text: text.into(), params }
}

fn timeline_sql(q: &SessionTimelineQuery, ctx: &QueryContext) -> Sql {
    let text = "
SELECT time, event_name, event_sequence, prompt_id, model, cost_usd,
    input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
    duration_ms, tool_name, tool_use_id, decision, source, success, status_code, attempt,
    error, prompt, tool_parameters AS parameters, attributes::VARCHAR AS attributes
FROM events
WHERE session_id = $3 AND time BETWEEN $1 AND $2
ORDER BY time, event_sequence";
    let mut params = range_params(ctx);
    params.push(Value::Text(q.session_id.clone()));
    Sql { text: text.into(), params }
}

fn tool_success_sql(ctx: &QueryContext) -> Sql {
    let text = "
WITH r AS (
    SELECT coalesce(tool_name, '(unknown)') AS tool_name,
        count(*) AS calls,
        count(*) FILTER (WHERE success) AS successes,
        count(*) FILTER (WHERE success = false) AS failures,
        quantile_cont(duration_ms, 0.5) AS p50_duration_ms,
        quantile_cont(duration_ms, 0.95) AS p95_duration_ms
    FROM events
    WHERE event_name = 'tool_result' AND time BETWEEN $1 AND $2
    GROUP BY 1
), d AS (
    SELECT coalesce(tool_name, '(unknown)') AS tool_name,
        count(*) FILTER (WHERE decision = 'accept') AS accepts,
        count(*) FILTER (WHERE decision = 'reject') AS rejects
    FROM events
    WHERE event_name = 'tool_decision' AND time BETWEEN $1 AND $2
    GROUP BY 1
)
SELECT tool_name,
    coalesce(calls, 0) AS calls,
    coalesce(successes, 0) AS successes,
    coalesce(failures, 0) AS failures,
    successes::DOUBLE / nullif(calls, 0) AS success_rate,
    p50_duration_ms, p95_duration_ms,
    coalesce(accepts, 0) AS accepts,
    coalesce(rejects, 0) AS rejects
FROM r FULL OUTER JOIN d USING (tool_name)
ORDER BY calls DESC, tool_name";
    Sql { text: text.into(), params: range_params(ctx) }
}

/// Cost per model: a wide time series (one field per model, label `model`) bucketed by the
/// query interval, zero where a model spent nothing, and a table of totals with tokens by type.
fn cost_by_model(conn: &Connection, q: &CostByModelQuery, ctx: &QueryContext) -> Result<Vec<Frame>, String> {
    let bucket = ctx.bucket_us();
    let (series_text, totals_text) = match q.source {
        CostSource::Metrics => (
            "
SELECT make_timestamp((epoch_us(time) // $3) * $3) AS time, coalesce(model, '(none)') AS model, sum(increment) AS cost_usd
FROM metric_points
WHERE metric_name = 'claude_code.cost.usage' AND time BETWEEN $1 AND $2
GROUP BY ALL ORDER BY 1, 2",
            "
SELECT coalesce(model, '(none)') AS model,
    coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.cost.usage'), 0) AS cost_usd,
    round(coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.token.usage' AND type = 'input'), 0))::BIGINT AS input_tokens,
    round(coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.token.usage' AND type = 'output'), 0))::BIGINT AS output_tokens,
    round(coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.token.usage' AND type = 'cacheRead'), 0))::BIGINT AS cache_read_tokens,
    round(coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.token.usage' AND type = 'cacheCreation'), 0))::BIGINT AS cache_creation_tokens
FROM metric_points
WHERE metric_name IN ('claude_code.cost.usage', 'claude_code.token.usage') AND time BETWEEN $1 AND $2
GROUP BY 1 ORDER BY cost_usd DESC, model",
        ),
        CostSource::Events => (
            "
SELECT make_timestamp((epoch_us(time) // $3) * $3) AS time, coalesce(model, '(none)') AS model, sum(cost_usd) AS cost_usd
FROM events
WHERE event_name = 'api_request' AND time BETWEEN $1 AND $2
GROUP BY ALL ORDER BY 1, 2",
            "
SELECT coalesce(model, '(none)') AS model,
    coalesce(sum(cost_usd), 0) AS cost_usd,
    coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
    coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
    coalesce(sum(cache_read_tokens), 0)::BIGINT AS cache_read_tokens,
    coalesce(sum(cache_creation_tokens), 0)::BIGINT AS cache_creation_tokens,
    count(*) AS requests
FROM events
WHERE event_name = 'api_request' AND time BETWEEN $1 AND $2
GROUP BY 1 ORDER BY cost_usd DESC, model",
        ),
    };
    let mut series_params = range_params(ctx);
    series_params.push(Value::BigInt(bucket));
    let series_sql = Sql { text: series_text.into(), params: series_params };
    let long = series_sql.run(conn)?;
    let mut series = wide_series(&long, "model", "cost_usd", ctx, bucket).with_name("cost_by_model");
    series.meta = Some(meta(&series_sql, Some(VisType::Graph)));

    let totals_sql = Sql { text: totals_text.into(), params: range_params(ctx) };
    let mut totals = table_frame(conn, "cost_by_model_totals", totals_sql)?;
    let mut frames = vec![series];
    frames.append(&mut totals);
    Ok(frames)
}

/// Pivots a long result (time, label, value) into Grafana's wide shape: one time field with a
/// row per bucket over the whole range, and one value field per label value, 0 where absent.
fn wide_series(long: &Table, label: &str, value: &str, ctx: &QueryContext, bucket_us: i64) -> Frame {
    let (Some(times), Some(labels), Some(values)) = (long.column("time"), long.column(label), long.column(value)) else {
        return Frame::new("");
    };
    if long.rows() == 0 {
        return Frame::new("");
    }
    let first = ctx.from.timestamp_micros().div_euclid(bucket_us) * bucket_us;
    let last = ctx.to.timestamp_micros().div_euclid(bucket_us) * bucket_us;
    if last < first {
        return Frame::new(""); // a reversed range selects nothing
    }
    let n = ((last - first) / bucket_us + 1) as usize;
    let mut by_label: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    for row in 0..long.rows() {
        let Some(t) = times.time_at(row) else {
            continue;
        };
        let idx = (t.timestamp_micros() - first).div_euclid(bucket_us);
        if idx < 0 || idx as usize >= n {
            continue;
        }
        let key = labels.text_at(row).unwrap_or("").to_string();
        let slot = by_label.entry(key).or_insert_with(|| vec![Some(0.0); n]);
        slot[idx as usize] = Some(slot[idx as usize].unwrap_or(0.0) + values.f64_at(row).unwrap_or(0.0));
    }
    let time_values: Vec<Option<DateTime<Utc>>> = (0..n as i64).map(|i| DateTime::from_timestamp_micros(first + i * bucket_us)).collect();
    let mut fields: Vec<Field> = vec![time_values.into_opt_field("time")];
    for (key, vals) in by_label {
        // Labels only, no field config: grafana-plugin-sdk 0.5.0 writes either labels or config
        // into the Arrow field metadata, never both (its match arms are swapped), and alerting
        // and legends need the labels. Panels set the unit themselves.
        let labels = BTreeMap::from([(label.to_string(), key)]);
        fields.push(vals.into_opt_field(value).with_labels(labels));
    }
    Frame::new("").with_fields(fields)
}

#[cfg(test)]
mod tests {
    use super::frames::Column;
    use super::*;
    use crate::ingest::testing::state_with;
    use crate::test_fixtures::run as fixture_run;

    fn ctx() -> QueryContext {
        QueryContext {
            from: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            to: DateTime::from_timestamp(1_900_000_000, 0).unwrap(),
            interval_ms: 0,
            max_data_points: 1000,
        }
    }

    async fn table(state: &crate::app::AppState, sql: Sql) -> Table {
        state.store().unwrap().read(move |c| sql.run(c).map_err(crate::store::StoreError::Task)).await.unwrap()
    }

    fn ints(t: &Table, name: &str) -> Vec<i64> {
        match t.column(name) {
            Some(Column::Int(v)) => v.iter().map(|x| x.unwrap_or(-1)).collect(),
            other => panic!("{name}: {other:?}"),
        }
    }

    fn floats(t: &Table, name: &str) -> Vec<f64> {
        (0..t.rows()).map(|r| t.column(name).and_then(|c| c.f64_at(r)).unwrap_or(f64::NAN)).collect()
    }

    fn texts(t: &Table, name: &str) -> Vec<String> {
        (0..t.rows()).map(|r| t.column(name).and_then(|c| c.text_at(r)).unwrap_or("").to_string()).collect()
    }

    #[tokio::test]
    async fn sessions_match_the_tools_fixture() {
        let (state, _dir) = state_with(&fixture_run("tools", "http/protobuf")).await;
        let t = table(&state, sessions_sql(&SessionsQuery { limit: 10 }, &ctx())).await;
        assert_eq!(texts(&t, "session_id"), ["4a513f9f-1086-4ca5-adf4-9dcd94af912f"]);
        assert_eq!(texts(&t, "team"), ["platform"]);
        assert_eq!(ints(&t, "prompts"), [1]);
        assert_eq!(ints(&t, "api_calls"), [7]);
        assert!((floats(&t, "cost_usd")[0] - 0.048449).abs() < 1e-12);
        assert_eq!(ints(&t, "input_tokens"), [147]);
        assert_eq!(ints(&t, "output_tokens"), [306]);
        assert_eq!(ints(&t, "cache_read_tokens"), [35328]);
        assert_eq!(ints(&t, "cache_creation_tokens"), [3584]);
        assert_eq!(ints(&t, "tokens"), [39365]);
        assert_eq!(ints(&t, "tool_calls"), [6]);
        assert_eq!(ints(&t, "tool_failures"), [0]);
        assert_eq!(ints(&t, "api_errors"), [0]);
        assert_eq!(ints(&t, "events"), [35]);
        assert_eq!(ints(&t, "lines_added"), [7]);
        assert_eq!(ints(&t, "lines_removed"), [1]);
        assert_eq!(ints(&t, "commits"), [1]);
        assert_eq!(ints(&t, "pull_requests"), [1]);
        assert!((floats(&t, "active_time_s")[0] - 1.746).abs() < 1e-9);
    }

    #[tokio::test]
    async fn timeline_is_ordered_by_sequence() {
        let (state, _dir) = state_with(&fixture_run("tools", "http/json")).await;
        let q = SessionTimelineQuery { session_id: "66d7c442-7dcc-40ef-ad40-14021ab26796".into() };
        let t = table(&state, timeline_sql(&q, &ctx())).await;
        assert_eq!(t.rows(), 35);
        assert_eq!(ints(&t, "event_sequence"), (0..35).collect::<Vec<i64>>());
        let names = texts(&t, "event_name");
        assert_eq!(names.iter().filter(|n| *n == "api_request").count(), 7);
        let cost: f64 = floats(&t, "cost_usd").iter().filter(|c| !c.is_nan()).sum();
        assert!((cost - 0.048449).abs() < 1e-12, "{cost}");
        let unknown = SessionTimelineQuery { session_id: "nope".into() };
        assert_eq!(table(&state, timeline_sql(&unknown, &ctx())).await.rows(), 0);
    }

    #[tokio::test]
    async fn tool_success_rate_counts_results_and_decisions() {
        let (state, _dir) = state_with(&fixture_run("tools", "grpc")).await;
        let t = table(&state, tool_success_sql(&ctx())).await;
        assert_eq!(texts(&t, "tool_name"), ["Bash", "Edit", "Read", "Write"]);
        assert_eq!(ints(&t, "calls"), [3, 1, 1, 1]);
        assert_eq!(ints(&t, "successes"), [3, 1, 1, 1]);
        assert_eq!(ints(&t, "failures"), [0, 0, 0, 0]);
        assert_eq!(floats(&t, "success_rate"), [1.0, 1.0, 1.0, 1.0]);
        assert_eq!(ints(&t, "accepts"), [3, 1, 1, 1]);
        assert_eq!(ints(&t, "rejects"), [0, 0, 0, 0]);
        assert!(floats(&t, "p95_duration_ms").iter().all(|d| *d >= 0.0));
    }

    #[tokio::test]
    async fn cost_by_model_from_metrics_and_events() {
        let (state, _dir) = state_with(&fixture_run("tools", "http/protobuf")).await;
        for (source, model) in [(CostSource::Metrics, "claude-opus-4-8[1m]"), (CostSource::Events, "claude-opus-4-8")] {
            let q = CostByModelQuery { source };
            let frames = state
                .store()
                .unwrap()
                .read(move |c| run(c, &Query::CostByModel(q), &ctx()).map_err(crate::store::StoreError::Task))
                .await
                .unwrap();
            assert_eq!(frames.len(), 2);
            let series = &frames[0];
            assert_eq!(series.fields().len(), 2, "time + one model");
            assert_eq!(series.fields()[1].labels.get("model").map(String::as_str), Some(model));
            let totals = &frames[1];
            assert_eq!(totals.fields()[0].name, "model");
        }
    }

    #[test]
    fn a_reversed_range_is_no_data_not_a_panic() {
        let reversed = QueryContext { from: ctx().to, to: ctx().from, ..ctx() };
        let long = Table {
            names: vec!["time".into(), "model".into(), "cost_usd".into()],
            columns: vec![Column::Time(vec![reversed.to.into()]), Column::Text(vec![Some("m".into())]), Column::Float(vec![Some(1.0)])],
        };
        assert!(wide_series(&long, "model", "cost_usd", &reversed, reversed.bucket_us()).fields().is_empty());
    }

    #[tokio::test]
    async fn cumulative_points_sum_to_the_final_value() {
        // error-cumulative exports the same series three times with growing values.
        let (state, _dir) = state_with(&fixture_run("error-cumulative", "http/protobuf")).await;
        let sql = Sql {
            text: "SELECT metric_name, sum(increment) AS total, sum(value) AS raw FROM metric_points GROUP BY 1 ORDER BY 1".into(),
            params: vec![],
        };
        let t = table(&state, sql).await;
        assert_eq!(
            texts(&t, "metric_name"),
            ["claude_code.active_time.total", "claude_code.cost.usage", "claude_code.session.count", "claude_code.token.usage"]
        );
        let totals = floats(&t, "total");
        assert!((totals[1] - 0.018464).abs() < 1e-12, "cost {}", totals[1]);
        assert_eq!(totals[2], 1.0, "one session, reported cumulatively three times");
        assert_eq!(totals[3], 27.0 + 65.0 + 4608.0 + 2304.0);
        // the sessions query agrees with the api_request events
        let s = table(&state, sessions_sql(&SessionsQuery { limit: 10 }, &ctx())).await;
        assert!((floats(&s, "cost_usd")[0] - 0.018464).abs() < 1e-12);
    }
}
