//! Traces: one trace in Grafana's trace view, and the search for traces (interactions, the
//! root span of each prompt, with what happened inside them).
use serde_json::{json, Value as Json};

use super::filters::Table;
use super::model::{TraceQuery, TracesQuery};
use super::sql::{Params, Sql};
use super::table::Table as Results;
use super::{QueryError, Runner};
use crate::frame::{Field, Frame, Meta, VisType};

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

/// Interactions started in the range, newest first: start, duration, the prompt (when Claude
/// Code logged it), model calls, tool calls and the tools used, errors (failed model calls
/// and tool executions), cost and tokens of the trace's API requests. Filters: the shared
/// ones (session, user, …), a minimum duration, errors only, a tool.
pub fn search_sql(r: &Runner, q: &TracesQuery) -> Result<Sql, String> {
    let mut p = r.params();
    let mut roots = r.filters.clause(Table::Spans, &mut p)?;
    if let Some(ms) = q.min_duration_ms.filter(|ms| *ms > 0.0) {
        roots.push_str(&format!(" AND duration_ms >= {}", p.bind(ms)));
    }
    if let Some(tool) = q.tool.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let k = p.bind(tool);
        roots.push_str(&format!(" AND trace_id IN (SELECT trace_id FROM spans WHERE start_time >= $1 AND tool_name = {k})"));
    }
    let errors_only = if q.errors_only { "\nWHERE errors > 0" } else { "" };
    let limit = p.bind(i64::from(q.limit));
    let text = format!(
        "
WITH roots AS (
    SELECT trace_id, start_time, duration_ms, session_id, prompt_id, user_id,
        nullif(json_extract_string(attributes, '$.user_prompt'), '<REDACTED>') AS prompt
    FROM spans
    WHERE start_time BETWEEN $1 AND $2 AND coalesce(parent_span_id, '') = ''{roots}
),
inside AS (
    SELECT trace_id,
        count(*) FILTER (WHERE name = 'claude_code.llm_request') AS model_calls,
        count(*) FILTER (WHERE name = 'claude_code.tool') AS tool_calls,
        string_agg(DISTINCT tool_name, ', ' ORDER BY tool_name) FILTER (WHERE name = 'claude_code.tool') AS tools,
        count(*) FILTER (WHERE (name = 'claude_code.llm_request' AND (success = false OR status = 'error'))
            OR (name = 'claude_code.tool.execution' AND success = false)) AS errors
    FROM spans
    WHERE start_time >= $1 AND trace_id IN (SELECT trace_id FROM roots)
    GROUP BY trace_id
),
calls AS (
    SELECT trace_id, sum(cost_usd) AS cost_usd, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
    FROM events
    WHERE time >= $1 AND event_name = 'api_request' AND trace_id IN (SELECT trace_id FROM roots)
    GROUP BY trace_id
)
SELECT * FROM (
    SELECT roots.start_time AS time, roots.trace_id, roots.session_id, roots.prompt_id, roots.user_id, roots.prompt,
        roots.duration_ms, coalesce(model_calls, 0) AS model_calls, coalesce(tool_calls, 0) AS tool_calls, tools,
        coalesce(errors, 0) AS errors, coalesce(calls.cost_usd, 0) AS cost_usd,
        coalesce(calls.input_tokens, 0) AS input_tokens, coalesce(calls.output_tokens, 0) AS output_tokens
    FROM roots LEFT JOIN inside USING (trace_id) LEFT JOIN calls USING (trace_id)
){errors_only}
ORDER BY time DESC, trace_id
LIMIT {limit}"
    );
    Ok(p.into_sql(text))
}

#[cfg(test)]
mod tests {
    use super::*;

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
