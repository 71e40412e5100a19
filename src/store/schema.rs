//! The DuckDB schema: tables, the typed attribute columns each table lifts out of OTLP
//! attributes, and the migrations that bring any older file up to date.
//!
//! Every OTLP attribute is kept: a typed column holds what queries filter and sum on, and the
//! `attributes` JSON column the rest (the resource's in `resource`). An attribute a single-key
//! column holds exactly as sent is stored only there; `full_attributes_sql` gives back the whole
//! set (files written before schema v2 kept everything in `attributes`, which it also reads).

/// How an attribute value is coerced into its typed column. Claude Code sends many numbers and
/// booleans as strings (`"12"`, `"true"`) and the same key as int or double; coercion accepts all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Int,
    Float,
    Bool,
}

impl ColumnKind {
    pub fn sql_type(self) -> &'static str {
        match self {
            ColumnKind::Text => "VARCHAR",
            ColumnKind::Int => "BIGINT",
            ColumnKind::Float => "DOUBLE",
            ColumnKind::Bool => "BOOLEAN",
        }
    }
}

/// A column filled from the first present attribute among `keys`.
#[derive(Clone, Copy, Debug)]
pub struct AttrColumn {
    pub column: &'static str,
    pub keys: &'static [&'static str],
    pub kind: ColumnKind,
}

const fn col(column: &'static str, keys: &'static [&'static str], kind: ColumnKind) -> AttrColumn {
    AttrColumn { column, keys, kind }
}

use ColumnKind::{Bool, Float, Int, Text};

/// A table's typed columns: the identity attributes Claude Code puts on every metric point, log
/// record and span, then the table's own.
macro_rules! with_identity_columns {
    ($($own:expr),* $(,)?) => {
        &[
            col("session_id", &["session.id"], Text),
            col("user_id", &["user.id"], Text),
            col("user_email", &["user.email"], Text),
            col("user_account_uuid", &["user.account_uuid"], Text),
            col("organization_id", &["organization.id"], Text),
            col("terminal_type", &["terminal.type"], Text),
            col("app_version", &["app.version"], Text),
            $($own),*
        ]
    };
}

/// Typed columns of `events` (log records), after the identity columns.
pub const EVENT_COLUMNS: &[AttrColumn] = with_identity_columns![
    col("prompt_id", &["prompt.id"], Text),
    col("event_sequence", &["event.sequence"], Int),
    col("model", &["model"], Text),
    col("cost_usd", &["cost_usd"], Float),
    col("input_tokens", &["input_tokens"], Int),
    col("output_tokens", &["output_tokens"], Int),
    col("cache_read_tokens", &["cache_read_tokens"], Int),
    col("cache_creation_tokens", &["cache_creation_tokens"], Int),
    col("duration_ms", &["duration_ms", "total_duration_ms"], Float),
    col("tool_name", &["tool_name"], Text),
    col("tool_use_id", &["tool_use_id"], Text),
    col("success", &["success"], Bool),
    col("decision", &["decision"], Text),
    col("source", &["source", "decision_source"], Text),
    col("status_code", &["status_code"], Int),
    col("attempt", &["attempt", "total_attempts"], Int),
    col("error", &["error"], Text),
    col("error_type", &["error_type"], Text),
    col("request_id", &["request_id"], Text),
    col("query_source", &["query_source"], Text),
    col("speed", &["speed"], Text),
    col("effort", &["effort"], Text),
    col("prompt", &["prompt"], Text),
    col("prompt_length", &["prompt_length"], Int),
    col("response_length", &["response_length"], Int),
    col("tool_parameters", &["tool_parameters"], Text),
];

/// Typed columns of `metric_points`.
pub const METRIC_COLUMNS: &[AttrColumn] = with_identity_columns![
    col("model", &["model"], Text),
    // `type`: token type (input/output/cacheRead/cacheCreation), lines added/removed, active time cli/user
    col("type", &["type"], Text),
    col("query_source", &["query_source"], Text),
    col("effort", &["effort"], Text),
    col("speed", &["speed"], Text),
    col("decision", &["decision"], Text),
    col("source", &["source"], Text),
    col("tool_name", &["tool_name"], Text),
    col("language", &["language"], Text),
    col("start_type", &["start_type"], Text),
];

/// Typed columns of `spans`.
pub const SPAN_COLUMNS: &[AttrColumn] = with_identity_columns![
    col("prompt_id", &["prompt.id"], Text),
    col("model", &["model"], Text),
    col("tool_name", &["tool_name"], Text),
    col("tool_use_id", &["tool_use_id", "gen_ai.tool.call.id"], Text),
    col("success", &["success"], Bool),
    col("decision", &["decision"], Text),
    col("status_code", &["status_code"], Int),
    col("attempt", &["attempt"], Int),
    col("input_tokens", &["input_tokens"], Int),
    col("output_tokens", &["output_tokens"], Int),
    col("cache_read_tokens", &["cache_read_tokens"], Int),
    col("cache_creation_tokens", &["cache_creation_tokens"], Int),
    col("ttft_ms", &["ttft_ms"], Int),
    col("error", &["error"], Text),
    col("interaction_sequence", &["interaction.sequence"], Int),
];

/// Columns every table starts with, before its typed attribute columns. Order matters: the
/// appender writes values positionally.
pub const EVENT_HEAD: &str = "
    time TIMESTAMP NOT NULL,
    observed_time TIMESTAMP,
    received_at TIMESTAMP NOT NULL,
    event_name VARCHAR NOT NULL,
    body VARCHAR,
    severity_number INTEGER,
    severity_text VARCHAR,
    trace_id VARCHAR,
    span_id VARCHAR,
    flags UINTEGER";

pub const EVENT_TAIL: &str = "
    attributes JSON NOT NULL,
    resource JSON NOT NULL,
    scope_name VARCHAR,
    scope_version VARCHAR,
    dropped_attributes UINTEGER";

pub const METRIC_HEAD: &str = "
    time TIMESTAMP NOT NULL,
    start_time TIMESTAMP,
    received_at TIMESTAMP NOT NULL,
    metric_name VARCHAR NOT NULL,
    unit VARCHAR,
    description VARCHAR,
    kind VARCHAR NOT NULL,
    temporality VARCHAR,
    is_monotonic BOOLEAN,
    value DOUBLE,
    increment DOUBLE,
    count UBIGINT,
    series_key UBIGINT NOT NULL";

pub const METRIC_TAIL: &str = "
    attributes JSON NOT NULL,
    resource JSON NOT NULL,
    scope_name VARCHAR,
    scope_version VARCHAR,
    extra JSON,
    flags UINTEGER";

pub const SPAN_HEAD: &str = "
    trace_id VARCHAR NOT NULL,
    span_id VARCHAR NOT NULL,
    parent_span_id VARCHAR,
    name VARCHAR NOT NULL,
    kind VARCHAR,
    start_time TIMESTAMP NOT NULL,
    end_time TIMESTAMP,
    duration_ms DOUBLE,
    received_at TIMESTAMP NOT NULL,
    status VARCHAR,
    status_message VARCHAR,
    trace_state VARCHAR,
    flags UINTEGER";

pub const SPAN_TAIL: &str = "
    attributes JSON NOT NULL,
    resource JSON NOT NULL,
    scope_name VARCHAR,
    scope_version VARCHAR,
    events JSON,
    links JSON";

/// SQL for a row's complete attributes as JSON text: the typed columns' attributes that were
/// lifted out of `attributes` (see `ingest::attrs::lift`), then everything `attributes` holds.
/// A key `attributes` still has (older rows, values not sent as plain strings) is not repeated.
pub fn full_attributes_sql(columns: &[AttrColumn]) -> String {
    let lifted: Vec<String> = columns
        .iter()
        .filter(|c| c.keys.len() == 1 && c.kind != ColumnKind::Float)
        .map(|c| {
            let key = c.keys[0];
            format!(
                "CASE WHEN \"{col}\" IS NOT NULL AND NOT json_exists(attributes, '$.\"{key}\"') THEN '\"{key}\":' || to_json(CAST(\"{col}\" AS VARCHAR)) END",
                col = c.column
            )
        })
        .collect();
    format!(
        "('{{' || concat_ws(',', {}, nullif(substr(CAST(attributes AS VARCHAR), 2, length(CAST(attributes AS VARCHAR)) - 2), '')) || '}}')",
        lifted.join(", ")
    )
}

fn create_table(name: &str, head: &str, typed: &[AttrColumn], tail: &str) -> String {
    let typed: String = typed.iter().map(|c| format!(",\n    \"{}\" {}", c.column, c.kind.sql_type())).collect();
    format!("CREATE TABLE {name} ({head}{typed},{tail}\n);\n")
}

/// The schema version this binary writes. Bump it and append a migration for every change.
pub const SCHEMA_VERSION: i32 = 3;

/// Migration `i` (1-based) brings a file from version `i - 1` to `i`.
pub fn migrations() -> Vec<String> {
    let v1 = [
        create_table("events", EVENT_HEAD, EVENT_COLUMNS, EVENT_TAIL),
        create_table("metric_points", METRIC_HEAD, METRIC_COLUMNS, METRIC_TAIL),
        create_table("spans", SPAN_HEAD, SPAN_COLUMNS, SPAN_TAIL),
    ]
    .concat();
    // v2: attributes a typed column holds exactly are no longer repeated in `attributes` (see
    // `full_attributes_sql`); `*_full` views give raw SQL every attribute in `attributes`.
    let view = |table: &str, columns: &[AttrColumn]| {
        format!("CREATE VIEW {table}_full AS SELECT * REPLACE ({} AS attributes) FROM {table};\n", full_attributes_sql(columns))
    };
    let v2 = [view("events", EVENT_COLUMNS), view("metric_points", METRIC_COLUMNS), view("spans", SPAN_COLUMNS)].concat();
    // v3: keys of stored export requests, to drop identical re-sends (a retry after a lost ack)
    let v3 = "CREATE TABLE ingest_batches (key HUGEINT NOT NULL, received_at TIMESTAMP NOT NULL);".to_string();
    vec![v1, v2, v3]
}

pub const VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_to_an_empty_database() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        for m in migrations() {
            conn.execute_batch(&m).unwrap();
        }
        let n: i64 =
            conn.query_row("SELECT count(*) FROM information_schema.columns WHERE table_name = 'events'", [], |r| r.get(0)).unwrap();
        assert_eq!(n as usize, 10 + EVENT_COLUMNS.len() + 5);
        assert_eq!(migrations().len(), SCHEMA_VERSION as usize);
    }

    /// Every attribute of every fixture event and span comes back from `full_attributes_sql`
    /// exactly as sent (same keys, same JSON values), though lifted ones are stored once.
    #[tokio::test]
    async fn full_attributes_give_back_every_attribute_as_sent() {
        use crate::ingest::decode::{self, Encoding, ExportRequest};
        use crate::ingest::{attrs::attributes_to_map, testing};
        let fixtures: Vec<_> = crate::test_fixtures::fixtures().into_iter().filter(|f| f.protocol == "http/protobuf").collect();
        let (state, _dir) = testing::state_with(&fixtures).await;
        let (mut events, mut spans) = (Vec::new(), Vec::new());
        for f in &fixtures {
            let mut body = crate::test_fixtures::fixture(&f.file);
            if f.content_encoding.as_deref() == Some("gzip") {
                body = decode::gunzip(&body, 64 << 20).unwrap();
            }
            let canonical = |kvs| serde_json::Value::Object(attributes_to_map(kvs)).to_string();
            match decode::decode(testing::signal(f), Encoding::Protobuf, &body).unwrap() {
                ExportRequest::Logs(r) => events.extend(
                    r.resource_logs.iter().flat_map(|r| &r.scope_logs).flat_map(|s| &s.log_records).map(|l| canonical(&l.attributes)),
                ),
                ExportRequest::Traces(r) => spans
                    .extend(r.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans).map(|l| canonical(&l.attributes))),
                ExportRequest::Metrics(_) => {}
            }
        }
        assert!(events.len() > 30 && !spans.is_empty());
        for (table, columns, mut expected) in [("events", EVENT_COLUMNS, events), ("spans", SPAN_COLUMNS, spans)] {
            let sql = format!("SELECT {} FROM {table}", full_attributes_sql(columns));
            let mut stored: Vec<String> = state
                .store()
                .unwrap()
                .read(move |c| {
                    let mut stmt = c.prepare(&sql)?;
                    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
                    Ok(rows)
                })
                .await
                .unwrap()
                .into_iter()
                .map(|t| serde_json::from_str::<serde_json::Value>(&t).unwrap_or_else(|e| panic!("{e}: {t}")).to_string())
                .collect();
            expected.sort();
            stored.sort();
            assert_eq!(stored, expected, "{table}");
            if table == "spans" {
                continue;
            }
            // and most of an event's attributes are stored once, in the typed columns
            let sql =
                format!("SELECT sum(length(CAST(attributes AS VARCHAR))), sum(length({})) FROM {table}", full_attributes_sql(columns));
            let (kept, full): (i64, i64) =
                state.store().unwrap().read(move |c| Ok(c.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?)).await.unwrap();
            assert!(kept * 2 < full, "{table}: {kept} of {full} bytes still in attributes");
        }
    }

    #[test]
    fn rows_written_before_attributes_were_lifted_read_back_without_repeats() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        for m in migrations() {
            conn.execute_batch(&m).unwrap();
        }
        conn.execute_batch(
            r#"INSERT INTO events (time, received_at, event_name, session_id, event_sequence, attributes, resource)
               VALUES (now(), now(), 'x', 's1', 3, '{"event.sequence":3,"session.id":"s1","z":null}', '{}'),
                      (now(), now(), 'y', 's2', 4, '{}', '{}')"#,
        )
        .unwrap();
        let mut stmt = conn.prepare(&format!("SELECT {} FROM events ORDER BY event_name", full_attributes_sql(EVENT_COLUMNS))).unwrap();
        let rows: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(rows[0], r#"{"event.sequence":3,"session.id":"s1","z":null}"#);
        assert_eq!(rows[1], r#"{"session.id":"s2","event.sequence":"4"}"#);
        let via_view: Vec<String> = conn
            .prepare("SELECT json_extract_string(attributes, '$.\"session.id\"') FROM events_full ORDER BY event_name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(via_view, ["s1", "s2"]);
    }

    #[test]
    fn typed_column_names_are_unique_per_table() {
        for cols in [EVENT_COLUMNS, METRIC_COLUMNS, SPAN_COLUMNS] {
            let mut names: Vec<_> = cols.iter().map(|c| c.column).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), cols.len());
        }
    }
}
