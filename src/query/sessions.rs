//! Sessions, one session's event timeline, and prompts (one row per `prompt.id`).
use super::filters::Table;
use super::model::{LimitOnly, SessionTimelineQuery, SessionsQuery};
use super::repositories::SESSION_VCS_CTE;
use super::rollup;
use super::sql::{Params, Sql};
use super::{QueryError, Runner};

/// The sessions of the range, latest first. Unfiltered, the rollups pick the latest `limit`
/// sessions and only their rows are read (every session's distinct prompts and resources at
/// once ran out of the 256 MB pool at 10M events); otherwise every session's rows.
pub fn sessions_sql(r: &Runner, q: &SessionsQuery) -> Result<Sql, QueryError> {
    let mut p = r.params();
    let (vcs, scope) = if r.rollups() {
        let latest = latest_sessions(r, q.limit)?;
        let scope = match latest.first_seen_us {
            Some(first) => format!(" AND session_id IN ({}) AND time >= make_timestamp({})", p.bind_list(&latest.ids), p.bind(first)),
            None => " AND false".to_string(),
        };
        let only = (!latest.ids.is_empty()).then(|| p.bind_list(&latest.ids));
        (vcs_cte(r, only.as_deref(), &mut p)?, scope)
    } else {
        (SESSION_VCS_CTE.to_string(), String::new())
    };
    let ctes = row_ctes(r, &mut p, &vcs, &scope)?;
    let limit = p.bind(i64::from(q.limit));
    let text = format!(
        "
WITH {ctes}, s AS (
    SELECT session_id,
        coalesce(ev.user_id, m.user_id) AS user_id,
        least(ev.first_seen, m.first_seen) AS first_seen,
        greatest(ev.last_seen, m.last_seen) AS last_seen,
        coalesce(ev.prompts, 0) AS prompts,
        coalesce(ev.api_calls, 0) AS api_calls,
        -- per-request events when the logs exporter is on, else the metrics
        coalesce(ev.cost_usd, m.cost_usd, 0)::DOUBLE AS cost_usd,
        ev.list_cost_usd::DOUBLE AS list_cost_usd,
        (CASE WHEN coalesce(ev.imported_calls, 0) = 0 THEN 'telemetry'
              WHEN ev.imported_calls = ev.api_calls AND m.first_seen IS NULL AND ev.events = ev.imported_calls THEN 'transcript'
              ELSE 'telemetry+transcript' END) AS data_source,
        (CASE WHEN ev.cost_usd IS NOT NULL THEN coalesce(ev.subagent_cost_usd, 0) ELSE coalesce(m.subagent_cost_usd, 0) END)::DOUBLE
            AS subagent_cost_usd,
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
    vcs.repository, vcs.branch,
    first_seen, last_seen,
    (epoch_ms(last_seen) - epoch_ms(first_seen))::DOUBLE AS duration_ms,
    prompts, api_calls, cost_usd, list_cost_usd, data_source,
    subagent_cost_usd, subagent_cost_usd / nullif(cost_usd, 0) AS subagent_cost_ratio,
    input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens AS tokens,
    input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
    tool_calls, tool_failures, api_errors, events,
    lines_added, lines_removed, commits, pull_requests, active_time_s,
    app_version, terminal_type,
    resource::VARCHAR AS resource
FROM s LEFT JOIN vcs USING (session_id)
ORDER BY last_seen DESC, session_id
LIMIT {limit}"
    );
    Ok(p.into_sql(text))
}

/// The latest sessions of the range by their last record, from the rollups, and the earliest
/// time any of them has a record in the range (a metric point's series start counts).
struct Latest {
    ids: Vec<String>,
    first_seen_us: Option<i64>,
}

fn latest_sessions(r: &Runner, limit: u32) -> Result<Latest, QueryError> {
    use crate::store::rollup::{SESSION_EVENTS, SESSION_METRICS};
    let cov = rollup::coverage(r)?;
    let mut p = Params::empty();
    let parts = [&*SESSION_EVENTS, &*SESSION_METRICS]
        .map(|rollup| format!("SELECT session_id, first_seen, last_seen FROM ({})", rollup::parts_sql(rollup, &cov, &mut p)));
    let limit = p.bind(i64::from(limit));
    let sql = p.into_sql(format!(
        "SELECT session_id, epoch_us(min(first_seen)) AS first_us FROM ({}) GROUP BY session_id ORDER BY max(last_seen) DESC, session_id LIMIT {limit}",
        parts.join("\nUNION ALL ")
    ));
    let t = sql.run(r.conn)?;
    let (ids, firsts) = match (t.column("session_id"), t.column("first_us")) {
        (Some(ids), Some(firsts)) => (ids, firsts),
        _ => return Err(QueryError::Failed("latest sessions: missing columns".into())),
    };
    Ok(Latest {
        ids: (0..t.rows()).filter_map(|i| ids.text(i).map(str::to_string)).collect(),
        first_seen_us: (0..t.rows()).filter_map(|i| firsts.number(i)).map(|x| x as i64).min(),
    })
}

/// `vcs` from the rollups, for the sessions in the bound list `only` (none: no session).
fn vcs_cte(r: &Runner, only: Option<&str>, p: &mut Params) -> Result<String, QueryError> {
    use crate::store::rollup::{SESSION_VCS_EVENTS, SESSION_VCS_METRICS};
    let only = format!("session_id IN ({})", only.unwrap_or("NULL"));
    Ok(merged_cte("vcs", &SESSION_VCS_EVENTS, &SESSION_VCS_METRICS, &wide_coverage(r)?, Some(&only), p))
}

/// `vcs` (`vcs_cte`), `ev` and `m` (per session: what its events and its metric points sum to)
/// from the rows matching `scope` too.
fn row_ctes(r: &Runner, p: &mut Params, vcs: &str, scope: &str) -> Result<String, QueryError> {
    let list_cost = r.list_cost_row_sql(p)?;
    let transcript = p.bind(crate::ingest::transcript::TRANSCRIPT_SCOPE);
    let ev_filter = r.filters.clause(Table::Events, p)?;
    let m_filter = r.filters.clause(Table::Metrics, p)?;
    Ok(format!(
        "{vcs}, ev AS (
    SELECT session_id,
        any_value(user_id) AS user_id,
        min(time) AS first_seen,
        max(time) AS last_seen,
        count(DISTINCT prompt_id) AS prompts,
        count(*) FILTER (WHERE event_name = 'api_request') AS api_calls,
        sum(cost_usd) FILTER (WHERE event_name = 'api_request') AS cost_usd,
        sum({list_cost}) FILTER (WHERE event_name = 'api_request') AS list_cost_usd,
        count(*) FILTER (WHERE scope_name = {transcript}) AS imported_calls,
        sum(cost_usd) FILTER (WHERE event_name = 'api_request'
            AND (agent_id IS NOT NULL OR query_source LIKE 'agent:%')) AS subagent_cost_usd,
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
    WHERE time BETWEEN $1 AND $2 AND session_id IS NOT NULL{ev_filter}{scope}
    GROUP BY session_id
), m AS (
    SELECT session_id,
        any_value(user_id) AS user_id,
        min(coalesce(start_time, time)) AS first_seen,
        max(time) AS last_seen,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.cost.usage') AS cost_usd,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.cost.usage' AND query_source = 'subagent') AS subagent_cost_usd,
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
    WHERE time BETWEEN $1 AND $2 AND session_id IS NOT NULL{m_filter}{scope}
    GROUP BY session_id
)"
    ))
}

/// The margin around the range within which a session's repository keys and descriptors count
/// (`filters::ATTRIBUTION_MARGIN`).
const MARGIN: chrono::Duration = chrono::Duration::days(1);

/// The coverage of the range widened by `MARGIN`.
fn wide_coverage(r: &Runner) -> Result<rollup::Coverage, QueryError> {
    let (from, to) = ((r.ctx.from - MARGIN).timestamp_micros(), (r.ctx.to + MARGIN).timestamp_micros());
    rollup::coverage_of(r, from, to)
}

fn merged_values(rollup: &crate::store::rollup::Rollup) -> String {
    rollup.values.iter().map(|v| format!("CAST({} AS {}) AS {}", v.merge, v.sql_type, v.name)).collect::<Vec<_>>().join(",\n        ")
}

/// One CTE `name` per session merging two rollups of the same columns (from events and from
/// metric points), of the sessions matching `only`.
fn merged_cte(
    name: &str,
    events: &crate::store::rollup::Rollup,
    metrics: &crate::store::rollup::Rollup,
    cov: &rollup::Coverage,
    only: Option<&str>,
    p: &mut Params,
) -> String {
    format!(
        "{name} AS (\n    SELECT session_id,\n        {}\n    FROM ({}\nUNION ALL {}){} GROUP BY session_id\n)",
        merged_values(events),
        rollup::parts_sql(events, cov, p),
        rollup::parts_sql(metrics, cov, p),
        only.map(|o| format!(" WHERE {o}")).unwrap_or_default(),
    )
}

/// `vcs` from the rollups: per session, its latest repository keys (records up to a day outside
/// the range), as `repositories::SESSION_VCS_CTE` reads them from the rows.
pub fn vcs_rollup_cte(r: &Runner, p: &mut Params) -> Result<String, QueryError> {
    use crate::store::rollup::{SESSION_VCS_EVENTS, SESSION_VCS_METRICS};
    Ok(merged_cte("vcs", &SESSION_VCS_EVENTS, &SESSION_VCS_METRICS, &wide_coverage(r)?, None, p))
}

/// `described` from the rollups: per session, provider, custom base URL, OS, architecture and
/// version (records up to a day outside the range).
pub fn described_rollup_cte(r: &Runner, p: &mut Params) -> Result<String, QueryError> {
    use crate::store::rollup::{SESSION_DESCRIBED_EVENTS, SESSION_DESCRIBED_METRICS};
    Ok(merged_cte("described", &SESSION_DESCRIBED_EVENTS, &SESSION_DESCRIBED_METRICS, &wide_coverage(r)?, None, p))
}

/// The sessions table's CTEs from the rollups (no filters: see `Runner::rollups`): `ev` and `m`
/// per session, what its events and metric points sum to.
pub fn session_rollup_ctes(r: &Runner, p: &mut Params) -> Result<String, QueryError> {
    use crate::store::rollup::{SESSION_EVENTS, SESSION_METRICS};
    let range = rollup::coverage(r)?;
    let ev_parts = rollup::parts_sql(&SESSION_EVENTS, &range, p);
    let m_parts = rollup::parts_sql(&SESSION_METRICS, &range, p);
    Ok(format!(
        "ev AS (
    SELECT session_id,
        {ev_merged},
        sum(CASE WHEN api_calls > 0 THEN coalesce(input_tokens, 0) + coalesce(output_tokens, 0) + coalesce(cache_read_tokens, 0)
            + coalesce(cache_creation_tokens, 0) END) AS tokens
    FROM ({ev_parts}) GROUP BY session_id
), m AS (
    SELECT session_id,
        {m_merged}
    FROM ({m_parts}) GROUP BY session_id
)",
        ev_merged = merged_values(&SESSION_EVENTS),
        m_merged = merged_values(&SESSION_METRICS),
    ))
}

pub fn timeline_sql(r: &Runner, q: &SessionTimelineQuery) -> Result<Sql, QueryError> {
    let mut p = r.params();
    let session = p.bind(q.session_id.as_str());
    let mut filter = r.filters.clause(Table::Events, &mut p)?;
    if r.settings.rollups {
        // read only the span that holds the session's rows
        if let Some(span) = r.session_span(std::slice::from_ref(&q.session_id))? {
            filter.push_str(&format!(" AND {}", super::filters::span_condition(span, &mut p)));
        }
    }
    let text = format!(
        "
SELECT time, event_name, event_sequence, prompt_id, model, cost_usd,
    input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,
    duration_ms, tool_name, tool_use_id, decision, source, success, status_code, attempt,
    error, prompt, tool_parameters AS parameters, {attributes} AS attributes
FROM events
WHERE session_id = {session} AND time BETWEEN $1 AND $2{filter}
ORDER BY time, event_sequence",
        attributes = crate::store::schema::full_attributes_sql("events")
    );
    Ok(p.into_sql(text))
}

/// One row per prompt: what it cost and caused. `cost_per_tool_call` spreads the prompt's cost
/// over its tool calls.
pub fn prompts_sql(r: &Runner, q: &LimitOnly) -> Result<Sql, String> {
    let mut p = r.params();
    let filter = r.filters.clause(Table::Events, &mut p)?;
    let limit = p.bind(i64::from(q.limit));
    let text = format!(
        "
WITH per_prompt AS (
    SELECT prompt_id,
        min(time) AS time,
        any_value(session_id) AS session_id,
        any_value(user_id) AS user_id,
        max(prompt) FILTER (WHERE event_name = 'user_prompt') AS prompt,
        max(prompt_length) FILTER (WHERE event_name = 'user_prompt') AS prompt_length,
        count(*) FILTER (WHERE event_name = 'api_request') AS api_calls,
        count(*) FILTER (WHERE event_name = 'api_error') AS api_errors,
        count(*) FILTER (WHERE event_name = 'tool_result') AS tool_calls,
        count(*) FILTER (WHERE event_name = 'tool_result' AND success = false) AS tool_failures,
        coalesce(sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0) + coalesce(cache_read_tokens, 0)
            + coalesce(cache_creation_tokens, 0)) FILTER (WHERE event_name = 'api_request'), 0)::BIGINT AS tokens,
        coalesce(sum(cost_usd) FILTER (WHERE event_name = 'api_request'), 0)::DOUBLE AS cost_usd,
        (epoch_ms(max(time)) - epoch_ms(min(time)))::DOUBLE AS duration_ms
    FROM events
    WHERE time BETWEEN $1 AND $2 AND prompt_id IS NOT NULL{filter}
    GROUP BY prompt_id
)
SELECT time, prompt_id, session_id, user_id, prompt, prompt_length, api_calls, api_errors,
    tool_calls, tool_failures, tokens, cost_usd, duration_ms,
    cost_usd / nullif(tool_calls, 0) AS cost_per_tool_call_usd
FROM per_prompt
ORDER BY time DESC, prompt_id
LIMIT {limit}"
    );
    Ok(p.into_sql(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::testing::state_with;
    use crate::query::filters::Filters;
    use crate::query::testing::*;
    use crate::test_fixtures::run as fixture_run;

    /// Builds a query's SQL with `filters` on the store's own connection (the rollups it reads
    /// are there) and runs it.
    async fn run_sql(
        state: &crate::app::AppState,
        f: impl FnOnce(&Runner) -> Result<Sql, QueryError> + Send + 'static,
        filters: Filters,
    ) -> crate::query::table::Table {
        state
            .store()
            .unwrap()
            .read(move |c| {
                let (ctx, settings) = (ctx(), crate::query::QuerySettings::default());
                let r = Runner::new(c, &ctx, &filters, &settings);
                Ok(f(&r)?.run(c)?)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn sessions_match_the_tools_fixture() {
        let (state, _dir) = state_with(&fixture_run("tools", "http/protobuf")).await;
        let t = run_sql(&state, |r| sessions_sql(r, &SessionsQuery { limit: 10 }), Filters::default()).await;
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

        // filtered out by session and by team
        let other: Filters = serde_json::from_value(serde_json::json!({"sessions": ["x"]})).unwrap();
        assert_eq!(run_sql(&state, |r| sessions_sql(r, &SessionsQuery { limit: 10 }), other).await.rows(), 0);
        let team: Filters = serde_json::from_value(serde_json::json!({"teams": ["platform"]})).unwrap();
        assert_eq!(run_sql(&state, |r| sessions_sql(r, &SessionsQuery { limit: 10 }), team).await.rows(), 1);
    }

    #[tokio::test]
    async fn timeline_is_ordered_by_sequence() {
        let (state, _dir) = state_with(&fixture_run("tools", "http/json")).await;
        let q = SessionTimelineQuery { session_id: "66d7c442-7dcc-40ef-ad40-14021ab26796".into() };
        let t = run_sql(&state, move |r| timeline_sql(r, &q), Filters::default()).await;
        assert_eq!(t.rows(), 35);
        assert_eq!(ints(&t, "event_sequence"), (0..35).collect::<Vec<i64>>());
        let names = texts(&t, "event_name");
        assert_eq!(names.iter().filter(|n| *n == "api_request").count(), 7);
        let cost: f64 = floats(&t, "cost_usd").iter().filter(|c| !c.is_nan()).sum();
        assert!((cost - 0.048449).abs() < 1e-12, "{cost}");
        let unknown = SessionTimelineQuery { session_id: "nope".into() };
        assert_eq!(run_sql(&state, move |r| timeline_sql(r, &unknown), Filters::default()).await.rows(), 0);
    }

    #[tokio::test]
    async fn one_prompt_with_its_calls_and_cost() {
        let (state, _dir) = state_with(&fixture_run("tools", "grpc")).await;
        let t = run_sql(&state, |r| Ok(prompts_sql(r, &LimitOnly { limit: 100 })?), Filters::default()).await;
        assert_eq!(t.rows(), 1);
        assert_eq!(ints(&t, "api_calls"), [7]);
        assert_eq!(ints(&t, "tool_calls"), [6]);
        assert_eq!(ints(&t, "tokens"), [39365]);
        assert!((floats(&t, "cost_usd")[0] - 0.048449).abs() < 1e-12);
        assert!((floats(&t, "cost_per_tool_call_usd")[0] - 0.048449 / 6.0).abs() < 1e-12);
        assert!(!texts(&t, "prompt")[0].is_empty());
        assert!(floats(&t, "duration_ms")[0] > 0.0);
    }
}
