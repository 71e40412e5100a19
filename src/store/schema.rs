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
    /// An RFC 3339 UTC time with milliseconds (`2026-12-01T07:09:12.345Z`, Claude Code's
    /// `event.timestamp`); lifted only when it reads back as that exact text.
    Timestamp,
}

impl ColumnKind {
    pub fn sql_type(self) -> &'static str {
        match self {
            ColumnKind::Text => "VARCHAR",
            ColumnKind::Int => "BIGINT",
            ColumnKind::Float => "DOUBLE",
            ColumnKind::Bool => "BOOLEAN",
            ColumnKind::Timestamp => "TIMESTAMP",
        }
    }
}

/// A column filled from the first present attribute among `keys`.
#[derive(Clone, Copy, Debug)]
pub struct AttrColumn {
    pub column: &'static str,
    pub keys: &'static [&'static str],
    pub kind: ColumnKind,
    /// The schema version that added it: the first table definition's columns sit before the
    /// `attributes` JSON; later ones were appended (`ALTER TABLE … ADD COLUMN`) after the tail,
    /// so a migrated file and a new one have the same column order.
    pub since: i32,
}

const fn col(column: &'static str, keys: &'static [&'static str], kind: ColumnKind) -> AttrColumn {
    AttrColumn { column, keys, kind, since: 1 }
}

/// A column of schema v4: a key of Claude Code 2.1.332 that queries read on every refresh, or
/// one that every event carries.
const fn col4(column: &'static str, keys: &'static [&'static str], kind: ColumnKind) -> AttrColumn {
    AttrColumn { column, keys, kind, since: 4 }
}

impl AttrColumn {
    /// Whether `lift` may take the attribute out of the `attributes` JSON: the column holds one
    /// key exactly (a float's text may not read back as sent).
    pub fn liftable(&self) -> bool {
        self.keys.len() == 1 && self.kind != ColumnKind::Float
    }
}

use ColumnKind::{Bool, Float, Int, Text, Timestamp};

// The repository and branch keys (Claude Code 2.1.332 with `OTEL_METRICS_INCLUDE_REPOSITORY`),
// on prompts, git tool results and metric points.
const VCS_REPOSITORY: AttrColumn = col4("vcs_repository", &["vcs.repository.name"], Text);
const VCS_OWNER: AttrColumn = col4("vcs_owner", &["vcs.owner.name"], Text);
const VCS_REPOSITORY_URL: AttrColumn = col4("vcs_repository_url", &["vcs.repository.url.full"], Text);
const VCS_BRANCH: AttrColumn = col4("vcs_branch", &["vcs.ref.head.name"], Text);
const VCS_COMMIT: AttrColumn = col4("vcs_commit", &["vcs.ref.head.revision"], Text);

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
    col4("event_timestamp", &["event.timestamp"], Timestamp),
    col4("ttft_ms", &["ttft_ms"], Int),
    col4("cache_creation_5m_tokens", &["cache_creation_5m_tokens"], Int),
    col4("cache_creation_1h_tokens", &["cache_creation_1h_tokens"], Int),
    col4("tool_source", &["tool_source"], Text),
    col4("permission_mode", &["permission_mode"], Text),
    col4("agent_id", &["agent_id"], Text),
    col4("agent_name", &["agent.name"], Text),
    col4("agent_type", &["agent_type"], Text),
    col4("total_tool_uses", &["total_tool_uses"], Int),
    col4("provider", &["anthropic.provider"], Text),
    col4("custom_base_url", &["anthropic.custom_base_url"], Bool),
    VCS_REPOSITORY,
    VCS_OWNER,
    VCS_REPOSITORY_URL,
    VCS_BRANCH,
    VCS_COMMIT,
    // hooks, MCP tools and plugins (`query::extensions`): a hook runs on every tool call
    col4("hook_event", &["hook_event"], Text),
    col4("hook_name", &["hook_name"], Text),
    col4("num_hooks", &["num_hooks"], Int),
    col4("num_success", &["num_success"], Int),
    col4("num_blocking", &["num_blocking"], Int),
    col4("num_non_blocking_error", &["num_non_blocking_error"], Int),
    col4("num_cancelled", &["num_cancelled"], Int),
    col4("stdout_chars", &["stdout_chars"], Int),
    col4("additional_context_chars", &["additional_context_chars"], Int),
    col4("system_message_chars", &["system_message_chars"], Int),
    col4("mcp_server_name", &["mcp_server.name"], Text),
    col4("mcp_tool_name", &["mcp_tool.name"], Text),
    col4("plugin_name", &["plugin.name"], Text),
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
    VCS_REPOSITORY,
    VCS_OWNER,
    VCS_REPOSITORY_URL,
    VCS_BRANCH,
    VCS_COMMIT,
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
    col4("first_content_ms", &["first_content_ms"], Int),
    col4("query_source_safe", &["query_source_safe"], Text),
    col4("queued_sends", &["queued_sends"], Int),
    col4("agent_id", &["agent_id"], Text),
    col4("provider", &["anthropic.provider"], Text),
    col4("custom_base_url", &["anthropic.custom_base_url"], Bool),
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
/// A key `attributes` still has (older rows, values not sent exactly as the column gives them
/// back) is not repeated. Since schema v4 a row says which it lifted (bit `i` of `lifted` for
/// column `i`), so its JSON is not parsed to find out, and bit `i` of `lifted_native` says the
/// value was sent as a JSON number or boolean rather than as a string.
pub fn full_attributes_sql(table: &str) -> String {
    let columns = TABLES.iter().find(|(t, _)| *t == table).map_or(&[][..], |(_, c)| *c);
    full_attributes_sql_at(table, columns, SCHEMA_VERSION)
}

/// `full_attributes_sql` as schema `version` had it (the v2 views are created before the later
/// columns exist).
fn full_attributes_sql_at(table: &str, columns: &[AttrColumn], version: i32) -> String {
    let native_bits = version >= 4;
    let mut lifted: Vec<String> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.liftable() && c.since <= version)
        .map(|(i, c)| {
            let key = c.keys[0];
            let as_sent = match c.kind {
                ColumnKind::Timestamp => format!("to_json(strftime(\"{col}\", '%Y-%m-%dT%H:%M:%S.%gZ'))", col = c.column),
                ColumnKind::Text => format!("to_json(\"{col}\")", col = c.column),
                _ if native_bits => format!(
                    "CASE WHEN (coalesce(lifted_native, 0) >> {i}) & 1 = 1 THEN CAST(\"{col}\" AS VARCHAR) ELSE to_json(CAST(\"{col}\" AS VARCHAR)) END",
                    col = c.column
                ),
                _ => format!("to_json(CAST(\"{col}\" AS VARCHAR))", col = c.column),
            };
            let not_in_json = format!("NOT json_exists(attributes, '$.\"{key}\"')");
            let taken = if native_bits {
                format!("(CASE WHEN lifted IS NULL THEN {not_in_json} ELSE (lifted >> {i}) & 1 = 1 END)")
            } else {
                not_in_json
            };
            format!("CASE WHEN \"{col}\" IS NOT NULL AND {taken} THEN '\"{key}\":' || {as_sent} END", col = c.column)
        })
        .collect();
    if native_bits && table == "events" {
        lifted.insert(0, "CASE WHEN event_name_lifted THEN '\"event.name\":' || to_json(event_name) END".to_string());
    }
    format!(
        "('{{' || concat_ws(',', {}, nullif(substr(CAST(attributes AS VARCHAR), 2, length(CAST(attributes AS VARCHAR)) - 2), '')) || '}}')",
        lifted.join(", ")
    )
}

fn create_table(name: &str, head: &str, typed: &[AttrColumn], tail: &str) -> String {
    let typed: String = typed.iter().filter(|c| c.since == 1).map(|c| format!(",\n    \"{}\" {}", c.column, c.kind.sql_type())).collect();
    format!("CREATE TABLE {name} ({head}{typed},{tail}\n);\n")
}

/// The tables with their typed columns, for what every migration does to each.
const TABLES: [(&str, &[AttrColumn]); 3] = [("events", EVENT_COLUMNS), ("metric_points", METRIC_COLUMNS), ("spans", SPAN_COLUMNS)];

/// SQL that fills a typed column from the `attributes` JSON of rows stored before it existed,
/// coercing as `ingest::attrs::coerce` does (the key stays in the JSON).
fn backfill_value(c: &AttrColumn) -> String {
    let text = format!("json_extract_string(attributes, '$.\"{}\"')", c.keys[0]);
    match c.kind {
        ColumnKind::Text => text,
        ColumnKind::Int => format!("CAST(round(TRY_CAST({text} AS DOUBLE)) AS BIGINT)"),
        ColumnKind::Float => format!("TRY_CAST({text} AS DOUBLE)"),
        ColumnKind::Bool => format!("TRY_CAST({text} AS BOOLEAN)"),
        ColumnKind::Timestamp => format!("TRY_CAST({text} AS TIMESTAMP)"),
    }
}

/// v4: typed columns for what every event has (`event.timestamp`; `event.name` in the
/// `event_name` column) and the Claude Code 2.1.332 keys queries read on every refresh, so no
/// dashboard parses the `attributes` JSON of millions of rows; numbers and booleans sent as
/// such are lifted too (`lifted_native`), and each row says which it lifted (`lifted`, so the
/// `*_full` views need not parse its JSON to find out). Rows already stored get the new columns
/// filled from their JSON (which keeps the keys: nothing is rewritten).
fn migration_v4() -> String {
    let mut sql = String::new();
    for (table, columns) in TABLES {
        sql += &format!("ALTER TABLE {table} ADD COLUMN lifted UBIGINT;\n");
        sql += &format!("ALTER TABLE {table} ADD COLUMN lifted_native UBIGINT;\n");
        if table == "events" {
            sql += "ALTER TABLE events ADD COLUMN event_name_lifted BOOLEAN;\n";
        }
        let added: Vec<&AttrColumn> = columns.iter().filter(|c| c.since == 4).collect();
        for c in &added {
            sql += &format!("ALTER TABLE {table} ADD COLUMN \"{}\" {};\n", c.column, c.kind.sql_type());
        }
        let sets: Vec<String> = added.iter().map(|c| format!("\"{}\" = {}", c.column, backfill_value(c))).collect();
        let any_key: Vec<String> = added.iter().map(|c| format!("contains(CAST(attributes AS VARCHAR), '\"{}\":')", c.keys[0])).collect();
        sql += &format!("UPDATE {table} SET {} WHERE {};\n", sets.join(", "), any_key.join(" OR "));
        sql += &format!(
            "CREATE OR REPLACE VIEW {table}_full AS SELECT * REPLACE ({} AS attributes) FROM {table};\n",
            full_attributes_sql_at(table, columns, 4)
        );
    }
    sql
}

/// `lifted` and `lifted_native` have a bit per typed column.
const _: () = assert!(EVENT_COLUMNS.len() <= 64 && METRIC_COLUMNS.len() <= 64 && SPAN_COLUMNS.len() <= 64);

/// The schema version this binary writes. Bump it and append a migration for every change.
pub const SCHEMA_VERSION: i32 = 6;

/// Migration `i` (1-based) brings a file from version `i - 1` to `i`.
pub fn migrations() -> Vec<String> {
    let v1 = TABLES
        .iter()
        .zip([(EVENT_HEAD, EVENT_TAIL), (METRIC_HEAD, METRIC_TAIL), (SPAN_HEAD, SPAN_TAIL)])
        .map(|((name, columns), (head, tail))| create_table(name, head, columns, tail))
        .collect::<Vec<_>>()
        .concat();
    // v2: attributes a typed column holds exactly are no longer repeated in `attributes` (see
    // `full_attributes_sql`); `*_full` views give raw SQL every attribute in `attributes`.
    let view = |table: &str, columns: &[AttrColumn]| {
        format!(
            "CREATE VIEW {table}_full AS SELECT * REPLACE ({} AS attributes) FROM {table};\n",
            full_attributes_sql_at(table, columns, 2)
        )
    };
    let v2 = TABLES.iter().map(|(t, c)| view(t, c)).collect::<Vec<_>>().concat();
    // v3: keys of stored export requests, to drop identical re-sends (a retry after a lost ack)
    let v3 = "CREATE TABLE ingest_batches (key HUGEINT NOT NULL, received_at TIMESTAMP NOT NULL);".to_string();
    // v5, v6: hourly rollups (see `rollup`), built from the rows already stored
    vec![v1, v2, v3, migration_v4(), super::rollup::migration_v5(), super::rollup::migration_v6()]
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
        assert_eq!(n as usize, 10 + EVENT_COLUMNS.len() + 5 + 3);
        assert_eq!(migrations().len(), SCHEMA_VERSION as usize);
    }

    /// Every attribute of every fixture event, metric point and span (Claude Code 2.1.197 and
    /// 2.1.332, whose numbers and booleans are sent as such) comes back from
    /// `full_attributes_sql` exactly as sent (same keys, same JSON values), though lifted ones
    /// are stored once.
    #[tokio::test]
    async fn full_attributes_give_back_every_attribute_as_sent() {
        use crate::ingest::decode::{self, Encoding, ExportRequest};
        use crate::ingest::{attrs::attributes_to_map, testing};
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        let fixtures: Vec<_> = [crate::test_fixtures::fixtures(), crate::test_fixtures::fixtures_v332()]
            .concat()
            .into_iter()
            .filter(|f| f.protocol == "http/protobuf")
            .collect();
        let (state, _dir) = testing::state_with(&fixtures).await;
        let (mut events, mut points, mut spans) = (Vec::new(), Vec::new(), Vec::new());
        for f in &fixtures {
            let mut body = f.body();
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
                ExportRequest::Metrics(r) => {
                    for m in r.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics) {
                        match &m.data {
                            Some(Data::Sum(d)) => points.extend(d.data_points.iter().map(|p| canonical(&p.attributes))),
                            Some(Data::Gauge(d)) => points.extend(d.data_points.iter().map(|p| canonical(&p.attributes))),
                            Some(Data::Histogram(d)) => points.extend(d.data_points.iter().map(|p| canonical(&p.attributes))),
                            _ => {}
                        }
                    }
                }
            }
        }
        assert!(events.len() > 60 && !spans.is_empty() && !points.is_empty());
        let (native, name_lifted): (i64, i64) = state
            .store()
            .unwrap()
            .read(|c| {
                Ok(c.query_row("SELECT count(lifted_native), count(event_name_lifted) FROM events", [], |r| Ok((r.get(0)?, r.get(1)?)))?)
            })
            .await
            .unwrap();
        assert!(native > 30 && name_lifted as usize == events.len(), "{native} {name_lifted}");
        for (table, mut expected) in [("events", events), ("metric_points", points), ("spans", spans)] {
            let sql = format!("SELECT {} FROM {table}", full_attributes_sql(table));
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
            if table != "events" {
                continue;
            }
            // and most of an event's attributes are stored once, in the typed columns (counted in
            // keys: the raw API bodies of one capture are a few very long values)
            let sql = format!("SELECT sum(len(json_keys(attributes))), sum(len(json_keys({}))) FROM {table}", full_attributes_sql(table));
            let (kept, full): (i64, i64) =
                state.store().unwrap().read(move |c| Ok(c.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?)).await.unwrap();
            assert!(kept * 3 < full, "{table}: {kept} of {full} keys still in attributes");
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
        let mut stmt = conn.prepare(&format!("SELECT {} FROM events ORDER BY event_name", full_attributes_sql("events"))).unwrap();
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
