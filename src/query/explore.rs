//! Explore and dashboard helpers: counts of everything Claude Code emits, template-variable
//! values and annotations.

use super::filters::{key_expr, Table};
use super::model::{AnnotationKind, AnnotationsQuery, VariableQuery};
use super::sql::Sql;
use super::{QueryError, Runner};
use crate::frame::Frame;

/// Every event and span name with counts, failures and durations: hooks, MCP connections,
/// compaction, skills, subagents, plugins, auth, refusals, …
pub fn event_counts_sql(r: &Runner) -> Result<Sql, String> {
    let mut p = r.params();
    let ev_filter = r.filters.clause(Table::Events, &mut p)?;
    let span_filter = r.filters.clause(Table::Spans, &mut p)?;
    let text = format!(
        "
SELECT 'event' AS kind, event_name AS name, count(*) AS count,
    count(*) FILTER (WHERE success = false OR event_name IN ('api_error', 'api_retries_exhausted', 'internal_error')) AS failures,
    count(DISTINCT session_id) AS sessions,
    sum(duration_ms) AS total_duration_ms,
    quantile_cont(duration_ms, 0.5) AS p50_duration_ms,
    quantile_cont(duration_ms, 0.95) AS p95_duration_ms
FROM events
WHERE time BETWEEN $1 AND $2{ev_filter}
GROUP BY ALL
UNION ALL
SELECT 'span', name, count(*),
    count(*) FILTER (WHERE status = 'error'),
    count(DISTINCT session_id),
    sum(duration_ms),
    quantile_cont(duration_ms, 0.5),
    quantile_cont(duration_ms, 0.95)
FROM spans
WHERE start_time BETWEEN $1 AND $2{span_filter}
GROUP BY ALL
ORDER BY kind, count DESC, name"
    );
    Ok(p.into_sql(text))
}

/// The distinct values of one key (template variables): fields `text` and `value`.
pub fn variable(r: &Runner, q: &VariableQuery) -> Result<Vec<Frame>, QueryError> {
    let sql = variable_sql(r, q)?;
    r.table("variable", sql)
}

pub fn variable_sql(r: &Runner, q: &VariableQuery) -> Result<Sql, String> {
    let mut p = r.params();
    let key = q.key.trim();
    let tables: &[Table] = match key {
        "event" | "event_name" | "event.name" | "prompt.id" | "prompt_id" => &[Table::Events],
        "metric_name" | "metric.name" => &[Table::Metrics],
        "tool" | "tool_name" => &[Table::Events, Table::Metrics],
        _ => &[Table::Events, Table::Metrics, Table::Spans],
    };
    let mut parts = Vec::new();
    for t in tables {
        let expr = key_expr(*t, key, &mut p)?;
        // one entry per model, as the models filter compares them
        let expr = if key == "model" { super::filters::model_name(&expr) } else { expr };
        let filter = r.filters.clause(*t, &mut p)?;
        parts.push(format!("SELECT DISTINCT {expr} AS v FROM {} WHERE {} BETWEEN $1 AND $2{filter}", t.name(), t.time_column()));
    }
    let limit = p.bind(i64::from(q.limit));
    let text = format!(
        "SELECT v AS text, v AS value FROM (\n{}\n) WHERE v IS NOT NULL AND v <> '' GROUP BY v ORDER BY v LIMIT {limit}",
        parts.join("\nUNION\n")
    );
    Ok(p.into_sql(text))
}

/// Annotation frames: time, title, text, tags (comma-separated).
pub fn annotations(r: &Runner, q: &AnnotationsQuery) -> Result<Vec<Frame>, QueryError> {
    let mut p = r.params();
    let mut parts = Vec::new();
    for kind in &q.kinds {
        let ev = r.filters.clause(Table::Events, &mut p)?;
        parts.push(match kind {
            AnnotationKind::SessionStart => {
                let m = r.filters.clause(Table::Metrics, &mut p)?;
                format!(
                    "SELECT min(t) AS time, 'Session started' AS title,
        'session ' || session_id || coalesce(' by ' || any_value(user_id), '') AS text,
        'session_start,' || session_id AS tags
    FROM (
        SELECT session_id, time AS t, user_id FROM events
        WHERE time BETWEEN $1 AND $2 AND session_id IS NOT NULL{ev}
        UNION ALL
        SELECT session_id, coalesce(start_time, time), user_id FROM metric_points
        WHERE metric_name = 'claude_code.session.count' AND time BETWEEN $1 AND $2 AND session_id IS NOT NULL{m}
    ) s
    WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.session_id = s.session_id AND e.time < $1)
    GROUP BY session_id
    HAVING min(t) >= $1"
                )
            }
            AnnotationKind::ApiError => format!(
                "SELECT time, 'API error ' || coalesce(CAST(status_code AS VARCHAR), '(network)') AS title,
        coalesce(error, '') || ' (model ' || coalesce(model, '?') || ', attempt ' || coalesce(CAST(attempt AS VARCHAR), '?')
            || ', session ' || coalesce(session_id, '?') || ')' AS text,
        'api_error,' || coalesce(model, '') AS tags
    FROM events WHERE event_name = 'api_error' AND time BETWEEN $1 AND $2{ev}"
            ),
            AnnotationKind::ToolReject => format!(
                "SELECT time, 'Tool rejected: ' || coalesce(tool_name, '?') AS title,
        'source ' || coalesce(source, '?') || ', session ' || coalesce(session_id, '?') AS text,
        'tool_reject,' || coalesce(tool_name, '') AS tags
    FROM events WHERE event_name = 'tool_decision' AND decision = 'reject' AND time BETWEEN $1 AND $2{ev}"
            ),
        });
    }
    if parts.is_empty() {
        return Err("kinds: give at least one of session_start, api_error, tool_reject".into());
    }
    let text = format!("SELECT * FROM (\n    {}\n) ORDER BY time", parts.join("\n    UNION ALL\n    "));
    r.table("annotations", p.into_sql(text))
}
