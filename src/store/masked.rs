//! Content and the views that hide it. With `OTEL_LOG_USER_PROMPTS`, `OTEL_LOG_ASSISTANT_RESPONSES`,
//! `OTEL_LOG_TOOL_DETAILS`, `OTEL_LOG_TOOL_CONTENT` or `OTEL_LOG_RAW_API_BODIES` on, the store
//! holds what developers typed, what the model answered, commands, file paths and raw API bodies.
//! The `masked` schema has a view over `events`, `spans` and their `*_full` views in which those
//! values read as `MARKER` (keys, counts and sizes stay); a reader connection whose search path
//! is `masked` (`apply`) resolves the plugin's SQL and a user's raw SQL to them.
use duckdb::Connection;

use super::schema::full_attributes_sql;

/// What content reads as for those who may not read it.
pub const MARKER: &str = "[hidden]";

/// The schema of the views that hide content.
pub const SCHEMA: &str = "masked";

/// Attribute keys whose values are content, on events, spans and span events: prompt text
/// (`prompt`, `prompt_text`, the interaction span's `user_prompt`), assistant responses and
/// survey answers (`response`), tool parameters and inputs, bash commands and their output
/// (`full_command`, span event `tool.output`'s `bash_command` and `output`), file paths
/// (`file_path`, `workspace.host_paths`, an imported transcript's `cwd` and file), raw API
/// bodies (`body`, `body_ref`), hook commands, and error messages, which may quote any of these.
pub const CONTENT_KEYS: &[&str] = &[
    "prompt",
    "prompt_text",
    "user_prompt",
    "response",
    "tool_parameters",
    "tool_input",
    "full_command",
    "bash_command",
    "output",
    "file_path",
    "workspace.host_paths",
    "cwd",
    "transcript.file",
    "body",
    "body_ref",
    "hook_definitions",
    "error",
];

/// Typed columns holding content, per table (their keys are in `CONTENT_KEYS`; a span's
/// status message is its error).
pub const EVENT_CONTENT_COLUMNS: &[&str] = &["prompt", "tool_parameters", "error"];
pub const SPAN_CONTENT_COLUMNS: &[&str] = &["error", "status_message"];

/// Whether a filter key or column name names content.
pub fn is_content(key: &str) -> bool {
    CONTENT_KEYS.contains(&key) || SPAN_CONTENT_COLUMNS.contains(&key)
}

/// What a reader connection reads: everything, or content hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    #[default]
    Content,
    Masked,
}

/// Points the connection's unqualified names at the masked views (or back at the tables).
pub fn apply(conn: &Connection, access: Access) -> duckdb::Result<()> {
    match access {
        Access::Content => conn.execute_batch("RESET search_path"),
        Access::Masked => conn.execute_batch(&format!("SET search_path = '{SCHEMA}'")),
    }
}

/// A regular expression matching a content key as a JSON object key.
fn key_pattern() -> String {
    let keys: Vec<String> = CONTENT_KEYS.iter().map(|k| k.replace('.', "\\.")).collect();
    format!("\"({})\":", keys.join("|"))
}

/// SQL for JSON object `json` with the value of every content key it has replaced by `MARKER`
/// (a JSON null stays null). Objects without any are returned as they are, after one regular
/// expression over their text; the others are parsed for their keys, then merged with a patch
/// of those present (a raw API body is 60 KiB: each parse of it counts).
pub fn hide_in_object_sql(json: &str) -> String {
    let keys: Vec<String> = CONTENT_KEYS.iter().map(|k| format!("'{k}'")).collect();
    format!(
        "CASE WHEN regexp_matches(CAST({json} AS VARCHAR), '{pattern}') \
         THEN json_merge_patch({json}, '{{' || array_to_string(list_transform(\
             list_filter(json_keys({json}), lambda k: list_contains([{keys}], k) AND json_type({json}, '$.\"' || k || '\"') <> 'NULL'), \
             lambda k: '\"' || k || '\":\"{MARKER}\"'), ',') || '}}') \
         ELSE {json} END",
        pattern = key_pattern(),
        keys = keys.join(", ")
    )
}

/// A typed content column as the masked views give it.
fn hide_column_sql(column: &str) -> String {
    format!("CASE WHEN \"{column}\" IS NOT NULL THEN '{MARKER}' END AS \"{column}\"")
}

/// The masked schema and its views, created again at every start (after the migrations, so
/// they have every column of their tables). A view has no `rowid` of its own: the events view
/// passes the table's on, for the log lines' ids.
pub fn views_sql() -> String {
    let event_columns: Vec<String> = EVENT_CONTENT_COLUMNS.iter().map(|c| hide_column_sql(c)).collect();
    let span_columns: Vec<String> = SPAN_CONTENT_COLUMNS.iter().map(|c| hide_column_sql(c)).collect();
    // span events: [{timeUnixNano, name, attributes}]
    let span_events = format!(
        "CASE WHEN events IS NOT NULL AND regexp_matches(CAST(events AS VARCHAR), '{pattern}') \
         THEN to_json(list_transform(CAST(events AS JSON[]), lambda e: json_merge_patch(e, json_object('attributes', {attributes})))) \
         ELSE events END AS events",
        pattern = key_pattern(),
        attributes = hide_in_object_sql("json_extract(e, '$.attributes')")
    );
    format!(
        "CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE OR REPLACE VIEW {SCHEMA}.events AS SELECT * REPLACE ({events}, {event_attributes} AS attributes), rowid FROM main.events;
CREATE OR REPLACE VIEW {SCHEMA}.spans AS SELECT * REPLACE ({spans}, {span_attributes} AS attributes, {span_events}) FROM main.spans;
CREATE OR REPLACE VIEW {SCHEMA}.events_full AS SELECT * REPLACE ({events_full} AS attributes) FROM {SCHEMA}.events;
CREATE OR REPLACE VIEW {SCHEMA}.spans_full AS SELECT * REPLACE ({spans_full} AS attributes) FROM {SCHEMA}.spans;
",
        events = event_columns.join(", "),
        event_attributes = hide_in_object_sql("attributes"),
        spans = span_columns.join(", "),
        span_attributes = hide_in_object_sql("attributes"),
        events_full = full_attributes_sql("events"),
        spans_full = full_attributes_sql("spans"),
    )
}

/// `labels` JSON text (an event's resource and attributes) with content values replaced, as
/// the masked views give them: for live tails, whose lines are built outside SQL.
pub fn hide_in_json_text(text: &str) -> String {
    if !CONTENT_KEYS.iter().any(|k| text.contains(&format!("\"{k}\":"))) {
        return text.to_string();
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
        Ok(mut map) => {
            for (key, value) in map.iter_mut() {
                if is_content(key) && !value.is_null() {
                    *value = serde_json::Value::String(MARKER.into());
                }
            }
            serde_json::Value::Object(map).to_string()
        }
        // not an object: nothing of it can be shown safely
        Err(_) => format!("\"{MARKER}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for m in super::super::schema::migrations() {
            conn.execute_batch(&m).unwrap();
        }
        conn.execute_batch(&views_sql()).unwrap();
        conn.execute_batch(
            r#"INSERT INTO events (time, received_at, event_name, prompt, prompt_length, error, attributes, resource)
               VALUES (now(), now(), 'user_prompt', 'fix the bug in /home/ann/app.rs', 30, NULL,
                       '{"prompt_text":"fix the bug in /home/ann/app.rs","command_name":null,"workspace.host_paths":["/home/ann"],"x":1}', '{}'),
                      (now(), now(), 'api_request', NULL, NULL, NULL, '{"x":2}', '{}');
               INSERT INTO spans (trace_id, span_id, name, start_time, received_at, status_message, error, attributes, resource, events)
               VALUES ('t', 's', 'claude_code.tool', now(), now(), 'cat: /etc/shadow: denied', 'cat: /etc/shadow: denied',
                       '{"full_command":"cat /etc/shadow","tool_name":"Bash"}', '{}',
                       '[{"timeUnixNano":"1","name":"tool.output","attributes":{"bash_command":"cat /etc/shadow","output":"root:x"}},{"timeUnixNano":"2","name":"gen_ai.request.attempt","attributes":{"attempt":1}}]')"#,
        )
        .unwrap();
        conn
    }

    fn rows(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get::<_, Option<String>>(0)).unwrap().map(|v| v.unwrap().unwrap_or_default()).collect()
    }

    #[test]
    fn the_masked_views_hide_content_and_keep_the_rest() {
        let conn = db();
        apply(&conn, Access::Masked).unwrap();
        assert_eq!(rows(&conn, "SELECT prompt FROM events ORDER BY event_name DESC"), ["[hidden]", ""]);
        assert_eq!(rows(&conn, "SELECT CAST(prompt_length AS VARCHAR) FROM events WHERE event_name = 'user_prompt'"), ["30"]);
        let attributes: serde_json::Value =
            serde_json::from_str(&rows(&conn, "SELECT attributes FROM events_full WHERE event_name = 'user_prompt'")[0]).unwrap();
        for (key, value) in [
            ("prompt", "\"[hidden]\""),
            ("prompt_text", "\"[hidden]\""),
            ("workspace.host_paths", "\"[hidden]\""),
            ("command_name", "null"),
            ("prompt_length", "\"30\""),
            ("x", "1"),
        ] {
            assert_eq!(attributes[key].to_string(), value, "{key}");
        }
        assert_eq!(rows(&conn, "SELECT attributes FROM events WHERE event_name = 'api_request'"), [r#"{"x":2}"#]);
        assert_eq!(rows(&conn, "SELECT status_message || ' ' || error FROM spans"), ["[hidden] [hidden]"]);
        // the span's error column is put back among its attributes, hidden too
        assert_eq!(
            rows(&conn, "SELECT attributes FROM spans_full"),
            [r#"{"error":"[hidden]","tool_name":"Bash","full_command":"[hidden]"}"#]
        );
        let events: serde_json::Value = serde_json::from_str(&rows(&conn, "SELECT events FROM spans")[0]).unwrap();
        assert_eq!(events[0]["attributes"], serde_json::json!({"bash_command": "[hidden]", "output": "[hidden]"}));
        assert_eq!(events[1]["attributes"], serde_json::json!({"attempt": 1}));
        // and back: the tables as they are
        apply(&conn, Access::Content).unwrap();
        assert_eq!(rows(&conn, "SELECT prompt FROM events WHERE event_name = 'user_prompt'"), ["fix the bug in /home/ann/app.rs"]);
    }

    #[test]
    fn live_labels_hide_what_the_views_hide() {
        let hidden: serde_json::Value =
            serde_json::from_str(&hide_in_json_text(r#"{"prompt":"secret","error":null,"prompt_length":"6","model":"m"}"#)).unwrap();
        assert_eq!(hidden, serde_json::json!({"prompt": "[hidden]", "error": null, "prompt_length": "6", "model": "m"}));
        assert_eq!(hide_in_json_text(r#"{"model":"m"}"#), r#"{"model":"m"}"#);
    }
}
