//! Cost by model, API performance (latency percentiles, errors) and productivity.
use super::filters::{canonical_key, key_expr, Table};
use super::measures::{breakdown, MetricSums};
use super::model::{
    ApiErrorsQuery, ApiLatencyQuery, BreakdownQuery, CostByModelQuery, Format, Latency, LatencySource, Measure, ProductivityQuery, Source,
};
use super::rollup;
use super::series::{pivot, Fill, Grid};
use super::sql::Params;
use super::table::{Table as ResultTable, Units};
use super::{series_frame, QueryError, Runner};
use crate::frame::{Field, Frame};

/// Cost per model: as wide time series (one field per model, label `model`), or as a table of
/// totals with tokens by type.
pub fn cost_by_model(r: &Runner, q: &CostByModelQuery) -> Result<Vec<Frame>, QueryError> {
    if q.format.is_series()? {
        let b = BreakdownQuery { measure: Measure::Cost, group_by: "model".into(), source: q.source, format: Format::TimeSeries, limit: 0 };
        let mut frames = breakdown(r, &b)?;
        frames.iter_mut().for_each(|f| f.name = "cost_by_model".into());
        return Ok(frames);
    }
    let mut p = r.params();
    let text = match q.source {
        Source::Metrics => {
            let MetricSums { params, from, conditions, group } = MetricSums::read(r, Some("model"))?;
            p = params;
            let model = group.unwrap_or_else(|| "model".into());
            format!(
                "
SELECT coalesce({model}, '(none)') AS model,
    coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.cost.usage'), 0) AS cost_usd,
    round(coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.token.usage' AND type = 'input'), 0))::BIGINT AS input_tokens,
    round(coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.token.usage' AND type = 'output'), 0))::BIGINT AS output_tokens,
    round(coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.token.usage' AND type = 'cacheRead'), 0))::BIGINT AS cache_read_tokens,
    round(coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.token.usage' AND type = 'cacheCreation'), 0))::BIGINT AS cache_creation_tokens
FROM {from}
WHERE metric_name IN ('claude_code.cost.usage', 'claude_code.token.usage') AND {conditions}
GROUP BY 1 ORDER BY cost_usd DESC, model"
            )
        }
        Source::Events => {
            let list_cost = r.list_cost_row_sql(&mut p)?;
            let filter = r.filters.clause(Table::Events, &mut p)?;
            format!(
                "
SELECT coalesce(model, '(none)') AS model,
    coalesce(sum(cost_usd), 0) AS cost_usd,
    sum({list_cost}) AS list_cost_usd,
    coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
    coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
    coalesce(sum(cache_read_tokens), 0)::BIGINT AS cache_read_tokens,
    coalesce(sum(cache_creation_tokens), 0)::BIGINT AS cache_creation_tokens,
    -- the split by cache lifetime, which Claude Code 2.1.332 and later send
    sum(cache_creation_5m_tokens)::BIGINT AS cache_creation_5m_tokens,
    sum(cache_creation_1h_tokens)::BIGINT AS cache_creation_1h_tokens,
    count(*) AS requests
FROM events
WHERE event_name = 'api_request' AND time BETWEEN $1 AND $2{filter}
GROUP BY 1 ORDER BY cost_usd DESC, model"
            )
        }
    };
    r.table("cost_by_model_totals", p.into_sql(text))
}

/// Quantile literals for the percentiles a query may ask for (a fixed list, never spliced input).
fn quantile(p: u8) -> Result<&'static str, String> {
    Ok(match p {
        50 => "0.5",
        75 => "0.75",
        90 => "0.9",
        95 => "0.95",
        99 => "0.99",
        other => return Err(format!("percentiles: {other} is not one of 50, 75, 90, 95, 99")),
    })
}

/// Latencies of model calls: percentiles over time (optionally per group) or as a table. From
/// `api_request` events (duration, time to first token) or `claude_code.llm_request` spans
/// (also the time to the first content block).
pub fn api_latency(r: &Runner, q: &ApiLatencyQuery) -> Result<Vec<Frame>, QueryError> {
    if q.percentiles.is_empty() {
        return Err("percentiles: give at least one of 50, 75, 90, 95, 99".into());
    }
    if q.latencies.is_empty() {
        return Err("latencies: give at least one of duration, ttft, first_content".into());
    }
    for latency in &q.latencies {
        latency.sql(q.source)?;
    }
    let series = q.format.is_series()?;
    let bucket = r.ctx.bucket_us();
    let by_model = q.group_by.as_deref().map(canonical_key).is_none_or(|k| k == "model");
    if r.rollups() && series && q.source == LatencySource::Events && by_model && rollup::whole_hours(bucket) {
        let (long, executed) = latency_from_rollups(r, q, bucket)?;
        return latency_frames(r, q, long, executed, series);
    }
    let table = match q.source {
        LatencySource::Events => Table::Events,
        LatencySource::Spans => Table::Spans,
    };
    let mut p = r.params();
    let group = match &q.group_by {
        Some(key) => Some(key_expr(table, key, &mut p)?),
        None => None,
    };
    let filter = r.filters.clause(table, &mut p)?;
    let mut cols = Vec::new();
    for latency in &q.latencies {
        let column = latency.sql(q.source)?;
        for pct in &q.percentiles {
            cols.push(format!("quantile_cont({column}, {}) AS p{pct}_{}_ms", quantile(*pct)?, latency.name()));
        }
    }
    let mut select = Vec::new();
    let time = table.time_column();
    if series {
        let b = p.bind(r.ctx.bucket_us());
        select.push(format!("make_timestamp((epoch_us({time}) // {b}) * {b}) AS time"));
    }
    if let Some(g) = &group {
        select.push(format!("coalesce({g}, '(none)') AS __group"));
    }
    if !series {
        select.push("count(*) AS requests".into());
        select.push("avg(duration_ms) AS avg_duration_ms".into());
    }
    select.extend(cols);
    let calls = match q.source {
        LatencySource::Events => "event_name = 'api_request'",
        LatencySource::Spans => "name = 'claude_code.llm_request'",
    };
    // HAVING: without a group, no requests must be "no data", not one row of zeros
    let order = if series { "ORDER BY 1" } else { "HAVING count(*) > 0 ORDER BY requests DESC" };
    let text = format!(
        "
SELECT {}
FROM {}
WHERE {calls} AND duration_ms IS NOT NULL AND {time} BETWEEN $1 AND $2{filter}
GROUP BY ALL {order}",
        select.join(",\n    "),
        table.name()
    );
    let sql = p.into_sql(text);
    let long = sql.run(r.conn)?;
    latency_frames(r, q, long, sql.describe(), series)
}

fn latency_frames(
    r: &Runner,
    q: &ApiLatencyQuery,
    mut long: ResultTable,
    executed: String,
    series: bool,
) -> Result<Vec<Frame>, QueryError> {
    if let Some(key) = &q.group_by {
        long.rename("__group", key);
    }
    if series {
        let grid = Grid::covering(r.ctx.from, r.ctx.to, r.ctx.bucket_us());
        Ok(vec![series_frame("api_latency", pivot(&long, grid, Fill::Null, Units::ByName)?, executed)])
    } else {
        Ok(vec![r.reduce(long)?.into_frame("api_latency", executed, Units::ByName)])
    }
}

/// Latency percentiles per bucket of whole hours (and model) from the duration and time to
/// first token sketches: their histograms merged per bucket in SQL, the percentiles computed
/// from them here (within the sketches' relative error, `store::rollup::SKETCH_ALPHA`).
fn latency_from_rollups(r: &Runner, q: &ApiLatencyQuery, bucket_us: i64) -> Result<(ResultTable, String), QueryError> {
    use crate::store::rollup::{API_DURATIONS, API_TTFT};
    let cov = rollup::coverage(r)?;
    let grouped = q.group_by.is_some();
    let qs: Vec<f64> = q.percentiles.iter().map(|pct| quantile(*pct).map(|_| f64::from(*pct) / 100.0)).collect::<Result<_, _>>()?;
    let width = q.latencies.len() * qs.len();
    // per bucket and group, every percentile of every latency
    let mut out: std::collections::BTreeMap<(i64, String), Vec<Option<f64>>> = Default::default();
    let mut executed = Vec::new();
    for (li, latency) in q.latencies.iter().enumerate() {
        let sketch = match latency {
            Latency::Duration => &*API_DURATIONS,
            Latency::Ttft => &*API_TTFT,
            // refused before: it is on spans only
            Latency::FirstContent => return Err(QueryError::Failed("first_content latencies have no rollup".into())),
        };
        let mut p = Params::empty();
        let hourly = rollup::hourly_parts_sql(sketch, &cov, &mut p);
        let b = p.bind(bucket_us);
        let group = if grouped { "coalesce(model, '(none)')" } else { "''" };
        let sql = p.into_sql(format!(
            "SELECT epoch_us(time) // {b} * {b} AS bucket_us, {group} AS grp, bin, sum(n)::BIGINT AS n, min(lo) AS lo, max(hi) AS hi
FROM ({hourly})
GROUP BY ALL"
        ));
        let t = sql.run(r.conn)?;
        executed.push(sql.describe());
        for (key, bins) in rollup::histograms(&t, &["bucket_us", "grp"])? {
            let bucket = key.first().cloned().flatten().and_then(|b| b.parse::<i64>().ok()).unwrap_or_default();
            let group = key.get(1).cloned().flatten().unwrap_or_default();
            let values = out.entry((bucket, group)).or_insert_with(|| vec![None; width]);
            for (pi, v) in rollup::histogram_quantiles(&bins, &qs).into_iter().enumerate() {
                values[li * qs.len() + pi] = v;
            }
        }
    }
    executed.push(format!("-- percentiles {:?} of each bucket's merged histogram, computed by the plugin", q.percentiles));
    let mut fields = vec![Field::times("time", out.keys().map(|(us, _)| us.saturating_mul(1000)).collect())];
    if grouped {
        fields.push(Field::texts("__group", out.keys().map(|(_, g)| Some(g.as_str()))));
    }
    for (li, latency) in q.latencies.iter().enumerate() {
        for (pi, pct) in q.percentiles.iter().enumerate() {
            let name = format!("p{pct}_{}_ms", latency.name());
            fields.push(Field::numbers(name, out.values().map(|v| v[li * qs.len() + pi]).collect()));
        }
    }
    Ok((ResultTable { fields, notices: Vec::new() }, executed.join("\n")))
}

impl Latency {
    pub fn name(self) -> &'static str {
        match self {
            Latency::Duration => "duration",
            Latency::Ttft => "ttft",
            Latency::FirstContent => "first_content",
        }
    }

    /// The column of this latency in the source's table.
    fn sql(self, source: LatencySource) -> Result<&'static str, String> {
        Ok(match (self, source) {
            (Latency::Duration, _) => "duration_ms",
            (Latency::Ttft, LatencySource::Events) => "ttft_ms",
            (Latency::Ttft, LatencySource::Spans) => "ttft_ms",
            (Latency::FirstContent, LatencySource::Spans) => "first_content_ms",
            (Latency::FirstContent, LatencySource::Events) => {
                return Err("latencies: first_content is on claude_code.llm_request spans; add \"source\": \"spans\"".into())
            }
        })
    }
}

/// API errors: the error rate (api_error ÷ (api_request + api_error)) over time, per status code
/// or overall, or a table per status code with retries exhausted.
pub fn api_errors(r: &Runner, q: &ApiErrorsQuery) -> Result<Vec<Frame>, QueryError> {
    let series = q.format.is_series()?;
    let status = "coalesce(CAST(status_code AS VARCHAR), 'network')";
    // `base`: the calls, errors and exhausted retries of the range, `n` records each; from the
    // rows one each, or per hour from the rollup (unfiltered, whole-hour buckets)
    let (mut p, base) = if r.rollups() && (!series || rollup::whole_hours(r.ctx.bucket_us())) {
        let mut p = Params::empty();
        let parts = rollup::hourly_parts_sql(&crate::store::rollup::API_OUTCOMES, &rollup::coverage(r)?, &mut p);
        (p, format!("base AS (\n    SELECT time, event_name, status_code, n FROM ({parts})\n)"))
    } else {
        let mut p = r.params();
        let filter = r.filters.clause(Table::Events, &mut p)?;
        let base = format!(
            "base AS (
    SELECT time, event_name, status_code, 1 AS n FROM events
    WHERE event_name IN ('api_request', 'api_error', 'api_retries_exhausted') AND time BETWEEN $1 AND $2{filter}
)"
        );
        (p, base)
    };
    let count = |events: &str| format!("coalesce(sum(n) FILTER (WHERE event_name IN ({events})), 0)::BIGINT");
    let (requests, errors, exhausted) = (count("'api_request', 'api_error'"), count("'api_error'"), count("'api_retries_exhausted'"));
    if !series {
        let text = format!(
            "
WITH {base}, total AS (SELECT {requests} AS requests FROM base)
SELECT {status} AS status_code,
    {errors} AS errors,
    {exhausted} AS retries_exhausted,
    {errors}::DOUBLE / nullif(any_value(total.requests), 0) AS error_rate
FROM base, total
WHERE event_name IN ('api_error', 'api_retries_exhausted')
GROUP BY 1 ORDER BY errors DESC, status_code"
        );
        return r.table("api_errors", p.into_sql(text));
    }
    let b = p.bind(r.ctx.bucket_us());
    let bucket = format!("make_timestamp((epoch_us(time) // {b}) * {b})");
    let text = if q.by_status_code {
        format!(
            "
WITH {base},
totals AS (SELECT {bucket} AS time, sum(n) AS requests FROM base WHERE event_name IN ('api_request', 'api_error') GROUP BY 1),
errs AS (SELECT {bucket} AS time, {status} AS status_code, sum(n) AS errors FROM base WHERE event_name = 'api_error' GROUP BY ALL)
SELECT time, status_code, errors::DOUBLE / requests AS error_rate
FROM errs JOIN totals USING (time) ORDER BY 1, 2"
        )
    } else {
        format!(
            "
WITH {base}
SELECT {bucket} AS time, ({errors})::DOUBLE / sum(n) AS error_rate
FROM base WHERE event_name IN ('api_request', 'api_error') GROUP BY 1 ORDER BY 1"
        )
    };
    let sql = p.into_sql(text);
    let long = sql.run(r.conn)?;
    let grid = Grid::covering(r.ctx.from, r.ctx.to, r.ctx.bucket_us());
    // A bucket without errors has rate 0 when per status code; overall, a bucket without
    // requests has no rate.
    let fill = if q.by_status_code { Fill::Value(0.0) } else { Fill::Null };
    Ok(vec![series_frame("api_errors", pivot(&long, grid, fill, Units::ByName)?, sql.describe())])
}

/// Lines added/removed, commits, PRs and active time (total, cli, user), optionally per group.
pub fn productivity(r: &Runner, q: &ProductivityQuery) -> Result<Vec<Frame>, QueryError> {
    let MetricSums { params: p, from, conditions, group } = MetricSums::read(r, q.group_by.as_deref())?;
    // groups with equal lines in a stable order
    let (group, ties) = match group {
        Some(expr) => (format!("coalesce({expr}, '(none)') AS __group,\n    "), ", __group"),
        None => (String::new(), ""),
    };
    let text = format!(
        "
SELECT {group}round(coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.lines_of_code.count' AND type = 'added'), 0))::BIGINT AS lines_added,
    round(coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.lines_of_code.count' AND type = 'removed'), 0))::BIGINT AS lines_removed,
    round(coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.commit.count'), 0))::BIGINT AS commits,
    round(coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.pull_request.count'), 0))::BIGINT AS pull_requests,
    coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.active_time.total'), 0) AS active_time_s,
    coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.active_time.total' AND type = 'cli'), 0) AS active_time_cli_s,
    coalesce(sum(increment) FILTER (WHERE metric_name = 'claude_code.active_time.total' AND type = 'user'), 0) AS active_time_user_s
FROM {from}
WHERE metric_name IN ('claude_code.lines_of_code.count', 'claude_code.commit.count', 'claude_code.pull_request.count',
    'claude_code.active_time.total') AND {conditions}
GROUP BY ALL
ORDER BY lines_added DESC{ties}"
    );
    let sql = p.into_sql(text);
    let mut t = sql.run(r.conn)?;
    if let Some(key) = &q.group_by {
        t.rename("__group", key);
    }
    Ok(vec![r.reduce(t)?.into_frame("productivity", sql.describe(), Units::ByName)])
}
