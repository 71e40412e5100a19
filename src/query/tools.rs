//! Tools: calls and success rate, failures by error type, accept/reject decisions, and the
//! model cost attributable to each tool call.
use super::filters::Table;
use super::rollup;
use super::sql::Sql;
use super::Runner;
use crate::store::rollup::LOOKUP_HOURS;

pub fn success_sql(r: &Runner) -> Result<Sql, super::QueryError> {
    if r.rollups() {
        return success_from_rollups(r);
    }
    let mut p = r.params();
    let filter = r.filters.clause(Table::Events, &mut p)?;
    // a tool_result has no tool_source: its call's tool_decision (same tool_use_id) has, looked
    // up within an hour around the range (as the rollups do)
    let text = format!(
        "
WITH d AS (
    SELECT tool_use_id, coalesce(tool_name, '(unknown)') AS tool_name,
        tool_source, decision
    FROM events
    WHERE event_name = 'tool_decision' AND time BETWEEN $1 AND $2{filter}
), source_of AS (
    SELECT tool_use_id, any_value(tool_source) AS tool_source FROM events
    WHERE event_name = 'tool_decision' AND tool_use_id IS NOT NULL
        AND time BETWEEN $1 - INTERVAL {LOOKUP_HOURS} HOUR AND $2 + INTERVAL {LOOKUP_HOURS} HOUR{filter}
    GROUP BY 1
), r AS (
    SELECT coalesce(e.tool_name, '(unknown)') AS tool_name,
        coalesce(s.tool_source, '(none)') AS tool_source,
        count(*) AS calls,
        count(*) FILTER (WHERE success) AS successes,
        count(*) FILTER (WHERE success = false) AS failures,
        quantile_cont(duration_ms, 0.5) AS p50_duration_ms,
        quantile_cont(duration_ms, 0.95) AS p95_duration_ms,
        quantile_cont(duration_ms, 0.99) AS p99_duration_ms
    FROM events e LEFT JOIN source_of s USING (tool_use_id)
    WHERE event_name = 'tool_result' AND time BETWEEN $1 AND $2{filter}
    GROUP BY 1, 2
), dd AS (
    SELECT tool_name, coalesce(tool_source, '(none)') AS tool_source,
        count(*) FILTER (WHERE decision = 'accept') AS accepts,
        count(*) FILTER (WHERE decision = 'reject') AS rejects
    FROM d
    GROUP BY 1, 2
)
{SUCCESS_TABLE}"
    );
    Ok(p.into_sql(text))
}

/// The tool success table from `r` (results) and `dd` (decisions).
const SUCCESS_TABLE: &str = "SELECT tool_name, tool_source,
    coalesce(calls, 0) AS calls,
    coalesce(successes, 0) AS successes,
    coalesce(failures, 0) AS failures,
    successes::DOUBLE / nullif(calls, 0) AS success_rate,
    p50_duration_ms, p95_duration_ms, p99_duration_ms,
    coalesce(accepts, 0) AS accepts,
    coalesce(rejects, 0) AS rejects
FROM r FULL OUTER JOIN dd USING (tool_name, tool_source)
ORDER BY calls DESC, tool_name, tool_source";

/// The same from the rollups; percentiles from their sketch (within 1 %).
fn success_from_rollups(r: &Runner) -> Result<Sql, super::QueryError> {
    use crate::store::rollup::{TOOL_DECISIONS, TOOL_RESULTS, TOOL_RESULT_DURATIONS};
    let mut p = super::sql::Params::empty();
    let cov = rollup::coverage(r)?;
    let results = rollup::parts_sql(&TOOL_RESULTS, &cov, &mut p);
    let quantiles = rollup::quantiles_select(
        r,
        &TOOL_RESULT_DURATIONS,
        &cov,
        &["tool_name", "tool_source"],
        &[(0.5, "p50_duration_ms"), (0.95, "p95_duration_ms"), (0.99, "p99_duration_ms")],
        &mut p,
    )?;
    let decisions = rollup::parts_sql(&TOOL_DECISIONS, &cov, &mut p);
    let text = format!(
        "
WITH counts AS (
    SELECT tool_name, tool_source, sum(calls)::BIGINT AS calls, sum(successes)::BIGINT AS successes, sum(failures)::BIGINT AS failures
    FROM ({results}) GROUP BY 1, 2
), q AS ({quantiles}
), r AS (
    SELECT counts.*, q.p50_duration_ms, q.p95_duration_ms, q.p99_duration_ms FROM counts LEFT JOIN q USING (tool_name, tool_source)
), dd AS (
    SELECT tool_name, tool_source, sum(accepts)::BIGINT AS accepts, sum(rejects)::BIGINT AS rejects
    FROM ({decisions}) GROUP BY 1, 2
)
{SUCCESS_TABLE}"
    );
    Ok(p.into_sql(text))
}

/// Failed tool results by tool and error type, with one example message.
pub fn errors_sql(r: &Runner) -> Result<Sql, String> {
    let mut p = r.params();
    let filter = r.filters.clause(Table::Events, &mut p)?;
    let text = format!(
        "
SELECT coalesce(tool_name, '(unknown)') AS tool_name,
    coalesce(error_type, '(none)') AS error_type,
    count(*) AS failures,
    max(time) AS last_seen,
    any_value(error) AS example_error
FROM events
WHERE event_name = 'tool_result' AND success = false AND time BETWEEN $1 AND $2{filter}
GROUP BY 1, 2
ORDER BY failures DESC, tool_name, error_type"
    );
    Ok(p.into_sql(text))
}

/// Accept/reject decisions by tool, source, permission mode and tool source (builtin, MCP,
/// plugin; both 2.1.332 and later): from `tool_decision` events and from the
/// `claude_code.code_edit_tool.decision` metric (Edit, Write, NotebookEdit only).
pub fn decisions_sql(r: &Runner) -> Result<Sql, String> {
    let mut p = r.params();
    let ev_filter = r.filters.clause(Table::Events, &mut p)?;
    let m_filter = r.filters.clause(Table::Metrics, &mut p)?;
    let text = format!(
        "
SELECT 'tool_decision' AS origin,
    coalesce(tool_name, '(unknown)') AS tool_name,
    coalesce(source, '(unknown)') AS source,
    coalesce(decision, '(unknown)') AS decision,
    coalesce(permission_mode, '(none)') AS permission_mode,
    coalesce(tool_source, '(none)') AS tool_source,
    count(*) AS decisions
FROM events
WHERE event_name = 'tool_decision' AND time BETWEEN $1 AND $2{ev_filter}
GROUP BY ALL
UNION ALL
SELECT 'code_edit_tool.decision',
    coalesce(tool_name, '(unknown)'),
    coalesce(source, '(unknown)'),
    coalesce(decision, '(unknown)'),
    '(none)',
    '(none)',
    round(sum(increment))::BIGINT
FROM metric_points
WHERE metric_name = 'claude_code.code_edit_tool.decision' AND time BETWEEN $1 AND $2{m_filter}
GROUP BY ALL
ORDER BY origin DESC, decisions DESC, tool_name, source, decision, permission_mode, tool_source"
    );
    Ok(p.into_sql(text))
}

/// Cost per tool call where attributable: each tool result is charged the cost of the model
/// call that asked for it (the last `api_request` before it in the same prompt), split evenly
/// between the tool calls that request produced.
pub fn costs_sql(r: &Runner) -> Result<Sql, String> {
    let mut p = r.params();
    let filter = r.filters.clause(Table::Events, &mut p)?;
    let text = format!(
        "
WITH ev AS (
    SELECT session_id, prompt_id, event_sequence, event_name, tool_name, cost_usd
    FROM events
    WHERE event_name IN ('api_request', 'tool_result') AND prompt_id IS NOT NULL AND event_sequence IS NOT NULL
        AND time BETWEEN $1 AND $2{filter}
), req AS (
    SELECT session_id, prompt_id, event_sequence, cost_usd FROM ev WHERE event_name = 'api_request'
), res AS (
    SELECT session_id, prompt_id, event_sequence, tool_name FROM ev WHERE event_name = 'tool_result'
), attributed AS (
    SELECT res.tool_name, res.session_id, req.event_sequence AS request_sequence, req.cost_usd
    FROM res ASOF JOIN req
        ON res.session_id = req.session_id AND res.prompt_id = req.prompt_id AND res.event_sequence > req.event_sequence
), split AS (
    SELECT tool_name, cost_usd / count(*) OVER (PARTITION BY session_id, request_sequence) AS cost
    FROM attributed
)
SELECT coalesce(tool_name, '(unknown)') AS tool_name,
    count(*) AS calls,
    coalesce(sum(cost), 0) AS attributed_cost_usd,
    coalesce(sum(cost), 0) / count(*) AS cost_per_call_usd
FROM split
GROUP BY 1
ORDER BY attributed_cost_usd DESC, tool_name"
    );
    Ok(p.into_sql(text))
}
