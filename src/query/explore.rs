//! Explore and dashboard helpers: events as logs, a prompt's trace, counts of everything
//! Claude Code emits, template-variable values and annotations.
use serde_json::{json, Value as Json};

use super::filters::{key_expr, Table};
use super::model::{AnnotationKind, AnnotationsQuery, LogsQuery, TraceQuery, VariableQuery};
use super::sql::{Params, Sql};
use super::table::Table as Results;
use super::{QueryError, Runner};
use crate::frame::{Field, Frame, FrameType, Meta, VisType};

/// `%text%` for ILIKE … ESCAPE '\', with the user's wildcards taken literally.
fn like_pattern(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// Events as a data-plane `log-lines` frame: `timestamp`, `body`, `severity` (error for failed
/// calls and tools, warning for refusals and rejections), `id`, `labels` (the event's resource
/// and attributes, every one, as JSON); then the ids and names a table of the events shows.
pub fn logs(r: &Runner, q: &LogsQuery) -> Result<Vec<Frame>, QueryError> {
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
SELECT time AS timestamp,
    concat_ws(' ', event_name, 'model=' || model, 'tool=' || tool_name, 'decision=' || decision,
        'source=' || source, 'success=' || CAST(success AS VARCHAR), 'status=' || CAST(status_code AS VARCHAR),
        'cost_usd=' || CAST(cost_usd AS VARCHAR), 'duration_ms=' || CAST(duration_ms AS VARCHAR),
        'error=' || error, 'prompt=' || prompt) AS body,
    CASE WHEN event_name IN ('api_error', 'api_retries_exhausted', 'internal_error') OR success = false THEN 'error'
        WHEN event_name = 'api_refusal' OR decision = 'reject' THEN 'warning'
        ELSE 'info' END AS severity,
    CAST(rowid AS VARCHAR) AS id,
    json_merge_patch(resource, {attributes}::JSON)::VARCHAR AS labels,
    event_name, session_id, prompt_id, user_id, model, tool_name
FROM events
WHERE time BETWEEN $1 AND $2{conditions}
ORDER BY time DESC, event_sequence DESC
LIMIT {limit}",
        attributes = crate::store::schema::full_attributes_sql("events")
    );
    let sql = p.into_sql(text);
    let t = sql.run(r.conn)?.json(&["labels"]);
    let mut meta = Meta::new(Some(FrameType::LogLines), Some(VisType::Logs), Some(sql.describe()));
    let fields = if t.rows() > 0 { t.fields } else { vec![] };
    meta.notices = t.notices;
    Ok(vec![Frame::new("logs", meta, fields)])
}

/// JSON object text → Grafana's `[{key, value}]` tag list.
fn tag_list(object: Option<&str>) -> Json {
    let map = object.and_then(|s| serde_json::from_str::<serde_json::Map<String, Json>>(s).ok()).unwrap_or_default();
    Json::Array(tags(map.iter()))
}

fn tags<'a>(map: impl Iterator<Item = (&'a String, &'a Json)>) -> Vec<Json> {
    map.map(|(key, value)| json!({"key": key, "value": value})).collect()
}

/// Span events (`[{timeUnixNano, name, attributes}]`) → Grafana's `[{timestamp (ms), name, fields}]`.
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
                json!({"timestamp": ns / 1e6, "name": e.get("name"), "fields": fields})
            })
            .collect(),
    )
}

/// Span links (`[{traceId, spanId, traceState, attributes}]`) → Grafana's `references`.
fn span_references(links: Option<&str>) -> Json {
    let list = links.and_then(|s| serde_json::from_str::<Vec<Json>>(s).ok()).unwrap_or_default();
    Json::Array(
        list.iter()
            .map(|l| {
                let tags = l.get("attributes").and_then(Json::as_object).map(|a| tags(a.iter())).unwrap_or_default();
                json!({"traceID": l.get("traceId"), "spanID": l.get("spanId"), "tags": tags})
            })
            .collect(),
    )
}

/// A trace in Grafana's trace-view shape: the spans of `traceId`, or of the trace(s) a prompt's
/// events point at. `serviceTags`, `tags`, `logs` and `references` are JSON arrays, which the
/// trace view maps over.
pub fn trace(r: &Runner, q: &TraceQuery) -> Result<Vec<Frame>, QueryError> {
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
SELECT trace_id, span_id, parent_span_id, name, kind, status, status_message, trace_state, scope_name, scope_version,
    epoch_us(start_time) / 1000.0 AS start_ms, coalesce(duration_ms, 0) AS duration_ms,
    coalesce(json_extract_string(resource, '$.\"service.name\"'), 'claude-code') AS service_name,
    {attributes} AS attributes, resource::VARCHAR AS resource, events::VARCHAR AS events, links::VARCHAR AS links
FROM spans
WHERE trace_id IN ({ids}){filter}
ORDER BY start_time, span_id",
        attributes = crate::store::schema::full_attributes_sql("spans")
    );
    let sql = p.into_sql(text);
    let t = sql.run(r.conn)?;
    let meta = Meta::new(None, Some(VisType::Trace), Some(sql.describe()));
    if t.rows() == 0 {
        return Ok(vec![Frame::no_data("trace", meta)]);
    }
    let rows = 0..t.rows();
    let text = |name: &str| -> Vec<Option<String>> { rows.clone().map(|i| col_text(&t, name, i)).collect() };
    let number = |name: &str| -> Vec<Option<f64>> { rows.clone().map(|i| t.column(name).and_then(|c| c.number(i))).collect() };
    let json = |name: &str, f: fn(Option<&str>) -> Json| -> Vec<Option<Json>> {
        rows.clone().map(|i| Some(f(col_text(&t, name, i).as_deref()))).collect()
    };
    // OpenTelemetry's status codes, as the trace view reads them
    let status_code: Vec<Option<f64>> = text("status")
        .iter()
        .map(|s| match s.as_deref() {
            Some("ok") => Some(1.0),
            Some("error") => Some(2.0),
            _ => Some(0.0),
        })
        .collect();
    let fields = vec![
        Field::texts("traceID", text("trace_id")),
        Field::texts("spanID", text("span_id")),
        Field::texts("parentSpanID", text("parent_span_id")),
        Field::texts("operationName", text("name")),
        Field::texts("serviceName", text("service_name")),
        Field::json("serviceTags", json("resource", tag_list)),
        Field::numbers("startTime", number("start_ms")).with_unit(Some("dateTimeAsIso")),
        Field::numbers("duration", number("duration_ms")).with_unit(Some("ms")),
        Field::json("tags", json("attributes", tag_list)),
        Field::json("logs", json("events", span_logs)),
        Field::json("references", json("links", span_references)),
        Field::texts("kind", text("kind")),
        Field::numbers("statusCode", status_code).with_unit(Some("none")),
        Field::texts("statusMessage", text("status_message")),
        Field::texts("instrumentationLibraryName", text("scope_name")),
        Field::texts("instrumentationLibraryVersion", text("scope_version")),
        Field::texts("traceState", text("trace_state")),
    ];
    Ok(vec![Frame::new("trace", meta, fields)])
}

fn col_text(t: &Results, name: &str, row: usize) -> Option<String> {
    t.column(name).and_then(|c| c.text(row)).map(str::to_string)
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
            json!([{"timestamp": 1.5, "name": "gen_ai.request.attempt",
                "fields": [{"key":"event","value":"gen_ai.request.attempt"},{"key":"attempt","value":1}]}])
        );
        assert_eq!(tag_list(None), json!([]));
        let links = span_references(Some(r#"[{"traceId":"ab","spanId":"cd","traceState":"","attributes":{"k":"v"}}]"#));
        assert_eq!(links, json!([{"traceID": "ab", "spanID": "cd", "tags": [{"key": "k", "value": "v"}]}]));
        assert_eq!(span_references(None), json!([]));
    }
}
