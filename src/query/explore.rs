//! Explore and dashboard helpers: events as logs, a prompt's trace, counts of everything
//! Claude Code emits, template-variable values and annotations.
use grafana_plugin_sdk::data::{Frame, IntoField, IntoOptField, VisType};
use serde_json::{json, Value as Json};

use super::filters::{key_expr, Table};
use super::frames::Table as ResultTable;
use super::model::{AnnotationKind, AnnotationsQuery, LogsQuery, TraceQuery, VariableQuery};
use super::sql::{Params, Sql};
use super::Runner;

/// `%text%` for ILIKE … ESCAPE '\', with the user's wildcards taken literally.
fn like_pattern(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// Events in Grafana's logs shape: time, body line, level, id, then details.
pub fn logs(r: &Runner, q: &LogsQuery) -> Result<Vec<Frame>, String> {
    let mut p = r.params();
    let mut conditions = String::new();
    let names: Vec<String> =
        q.event_names.iter().map(|n| n.trim().trim_start_matches("claude_code.").to_string()).filter(|n| !n.is_empty()).collect();
    if !names.is_empty() {
        conditions.push_str(&format!(" AND event_name IN ({})", p.bind_list(&names)));
    }
    if let Some(text) = q.search.as_deref().filter(|t| !t.is_empty()) {
        let k = p.bind(like_pattern(text));
        conditions.push_str(&format!(
            " AND (prompt ILIKE {k} ESCAPE '\\' OR error ILIKE {k} ESCAPE '\\' OR tool_parameters ILIKE {k} ESCAPE '\\' \
             OR json_extract_string(attributes, 'response') ILIKE {k} ESCAPE '\\')"
        ));
    }
    conditions.push_str(&r.filters.clause(Table::Events, &mut p)?);
    let limit = p.bind(i64::from(q.limit));
    let text = format!(
        "
SELECT time,
    concat_ws(' ', event_name, 'model=' || model, 'tool=' || tool_name, 'decision=' || decision,
        'source=' || source, 'success=' || CAST(success AS VARCHAR), 'status=' || CAST(status_code AS VARCHAR),
        'cost_usd=' || CAST(cost_usd AS VARCHAR), 'duration_ms=' || CAST(duration_ms AS VARCHAR),
        'error=' || error, 'prompt=' || prompt) AS body,
    CASE WHEN event_name IN ('api_error', 'api_retries_exhausted', 'internal_error') OR success = false THEN 'error'
        WHEN event_name = 'api_refusal' OR decision = 'reject' THEN 'warning'
        ELSE 'info' END AS level,
    CAST(rowid AS VARCHAR) AS id,
    event_name, session_id, prompt_id, user_id, model, tool_name,
    {attributes} AS attributes
FROM events
WHERE time BETWEEN $1 AND $2{conditions}
ORDER BY time DESC, event_sequence DESC
LIMIT {limit}",
        attributes = crate::store::schema::full_attributes_sql(crate::store::schema::EVENT_COLUMNS)
    );
    let sql = p.into_sql(text);
    let t = sql.run(r.conn)?;
    let mut frame = Frame::new("logs").with_metadata(super::meta(&sql, Some(VisType::Logs)));
    if t.rows() > 0 {
        // plain fields: Grafana's logs view finds body, level and id by their names
        frame = frame.with_fields(t.names.iter().zip(t.columns).map(|(n, c)| c.into_field(n)));
    }
    Ok(vec![frame])
}

/// JSON object text → Grafana's `[{key, value}]` tag list.
fn tag_list(object: Option<&str>) -> Json {
    let map = object.and_then(|s| serde_json::from_str::<serde_json::Map<String, Json>>(s).ok()).unwrap_or_default();
    Json::Array(tags(map.iter()))
}

fn tags<'a>(map: impl Iterator<Item = (&'a String, &'a Json)>) -> Vec<Json> {
    map.map(|(key, value)| json!({"key": key, "value": value})).collect()
}

/// Span events (`[{timeUnixNano, name, attributes}]`) → Grafana's `[{timestamp (ms), fields}]`.
fn span_logs(events: Option<&str>) -> Json {
    let list = events.and_then(|s| serde_json::from_str::<Vec<Json>>(s).ok()).unwrap_or_default();
    Json::Array(
        list.iter()
            .map(|e| {
                let ns: f64 = e.get("timeUnixNano").and_then(|t| t.as_str()).and_then(|t| t.parse().ok()).unwrap_or(0.0);
                let mut fields = vec![json!({"key": "event", "value": e.get("name").cloned().unwrap_or(Json::Null)})];
                if let Some(attrs) = e.get("attributes").and_then(Json::as_object) {
                    fields.extend(tags(attrs.iter()));
                }
                json!({"timestamp": ns / 1e6, "fields": fields})
            })
            .collect(),
    )
}

/// A trace in Grafana's trace-view shape: the spans of `traceId`, or of the trace(s) a prompt's
/// events point at.
pub fn trace(r: &Runner, q: &TraceQuery) -> Result<Vec<Frame>, String> {
    let mut p = Params::empty();
    let ids = match (&q.trace_id, &q.prompt_id) {
        (Some(t), _) if !t.is_empty() => p.bind(t.to_ascii_lowercase()),
        (_, Some(prompt)) if !prompt.is_empty() => {
            let k = p.bind(prompt.as_str());
            format!(
                "SELECT trace_id FROM events WHERE prompt_id = {k} AND trace_id IS NOT NULL \
                 UNION SELECT trace_id FROM spans WHERE prompt_id = {k}"
            )
        }
        _ => return Err("trace needs traceId or promptId".into()),
    };
    let filter = r.filters.clause(Table::Spans, &mut p)?;
    let text = format!(
        "
SELECT trace_id, span_id, parent_span_id, name, kind, status, status_message,
    epoch_us(start_time) / 1000.0 AS start_ms, coalesce(duration_ms, 0) AS duration_ms,
    coalesce(json_extract_string(resource, '$.\"service.name\"'), 'claude-code') AS service_name,
    {attributes} AS attributes, resource::VARCHAR AS resource, events::VARCHAR AS events
FROM spans
WHERE trace_id IN ({ids}){filter}
ORDER BY start_time, span_id",
        attributes = crate::store::schema::full_attributes_sql(crate::store::schema::SPAN_COLUMNS)
    );
    let sql = p.into_sql(text);
    let t = sql.run(r.conn)?;
    let mut frame = Frame::new("trace").with_metadata(super::meta(&sql, Some(VisType::Trace)));
    if t.rows() == 0 {
        return Ok(vec![frame]);
    }
    let text_col = |name: &str| -> Vec<Option<String>> { (0..t.rows()).map(|i| col_text(&t, name, i)).collect() };
    let float_col = |name: &str| -> Vec<f64> { (0..t.rows()).map(|i| t.column(name).and_then(|c| c.f64_at(i)).unwrap_or(0.0)).collect() };
    let status_code: Vec<i64> = text_col("status")
        .iter()
        .map(|s| match s.as_deref() {
            Some("ok") => 1,
            Some("error") => 2,
            _ => 0,
        })
        .collect();
    let json_col = |name: &str, f: fn(Option<&str>) -> Json| -> Vec<String> {
        (0..t.rows()).map(|i| f(col_text(&t, name, i).as_deref()).to_string()).collect()
    };
    frame = frame.with_fields([
        text_col("trace_id").into_opt_field("traceID"),
        text_col("span_id").into_opt_field("spanID"),
        text_col("parent_span_id").into_opt_field("parentSpanID"),
        text_col("name").into_opt_field("operationName"),
        text_col("service_name").into_opt_field("serviceName"),
        json_col("resource", tag_list).into_field("serviceTags"),
        float_col("start_ms").into_field("startTime"),
        float_col("duration_ms").into_field("duration"),
        json_col("attributes", tag_list).into_field("tags"),
        json_col("events", span_logs).into_field("logs"),
        text_col("kind").into_opt_field("kind"),
        status_code.into_field("statusCode"),
        text_col("status_message").into_opt_field("statusMessage"),
    ]);
    Ok(vec![frame])
}

fn col_text(t: &ResultTable, name: &str, row: usize) -> Option<String> {
    t.column(name).and_then(|c| c.text_at(row)).map(str::to_string)
}

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
pub fn variable(r: &Runner, q: &VariableQuery) -> Result<Vec<Frame>, String> {
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
pub fn annotations(r: &Runner, q: &AnnotationsQuery) -> Result<Vec<Frame>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn tags_and_span_logs_in_grafana_shape() {
        assert_eq!(tag_list(Some(r#"{"a":"1","b":2}"#)), json!([{"key":"a","value":"1"},{"key":"b","value":2}]));
        let logs = span_logs(Some(r#"[{"timeUnixNano":"1500000","name":"gen_ai.request.attempt","attributes":{"attempt":1}}]"#));
        assert_eq!(
            logs,
            json!([{"timestamp": 1.5, "fields": [{"key":"event","value":"gen_ai.request.attempt"},{"key":"attempt","value":1}]}])
        );
        assert_eq!(tag_list(None), json!([]));
    }
}
