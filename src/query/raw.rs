//! Raw SQL queries: Grafana-style macros expanded in the backend (alert rules need them too),
//! then run sandboxed: one SELECT only (checked by DuckDB's own parser), inside a transaction
//! that is always rolled back, with external access disabled for the whole database (see
//! `Store::open`), a time limit and a row cap.
use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::model::{Format, RawSqlQuery};
use super::series::{pivot, Fill, Grid};
use super::sql::Sql;
use super::table::{Table, Units};
use super::{QueryContext, QueryError, Runner};
use crate::frame::{Field, Frame, FrameType, Kind, Meta, Notice, VisType};

/// Limits for raw SQL, from the plugin configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub max_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout: Duration::from_secs(30), max_rows: 100_000 }
    }
}

/// The SQL after macro expansion, and the `$__timeGroup` bucketing a time series should use.
#[derive(Debug, Clone, PartialEq)]
pub struct Expanded {
    pub sql: String,
    pub group: Option<(i64, Fill)>,
}

fn literal(t: DateTime<Utc>) -> String {
    format!("TIMESTAMP '{}'", t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f"))
}

/// The interval Grafana means by `$__interval`, in ms.
fn interval_ms(ctx: &QueryContext) -> i64 {
    if ctx.interval_ms > 0 {
        ctx.interval_ms
    } else {
        ctx.bucket_us() / 1000
    }
}

/// `5m`, `'30s'`, `1h`, `$__interval`, `auto` → µs.
fn parse_interval(arg: &str, ctx: &QueryContext) -> Result<i64, String> {
    let a = arg.trim().trim_matches('\'').trim_matches('"').trim();
    if a == "$__interval" || a == "auto" || a.is_empty() {
        return Ok(ctx.bucket_us());
    }
    let split = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
    let (n, unit) = a.split_at(split);
    let n: i64 = n.parse().map_err(|_| format!("interval {arg:?}: expected a number and a unit such as 5m"))?;
    let unit_us: i64 = match unit.trim() {
        "ms" => 1_000,
        "s" | "" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        "w" => 604_800_000_000,
        other => return Err(format!("interval {arg:?}: unknown unit {other:?} (ms, s, m, h, d, w)")),
    };
    n.checked_mul(unit_us).filter(|us| *us > 0).ok_or_else(|| format!("interval {arg:?} is out of range"))
}

fn parse_fill(arg: &str) -> Result<Fill, String> {
    let a = arg.trim();
    match a.to_ascii_lowercase().as_str() {
        "null" | "none" => Ok(Fill::Null),
        "previous" => Ok(Fill::Previous),
        _ => a.parse::<f64>().map(Fill::Value).map_err(|_| format!("fill {arg:?}: use NULL, previous or a number")),
    }
}

/// Splits `a, f(b, c), 'd,e'` at top-level commas.
fn split_args(s: &str) -> Vec<String> {
    let mut args = vec![];
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut cur = String::new();
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                args.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() || !args.is_empty() {
        args.push(cur.trim().to_string());
    }
    args
}

/// Expands every `$__macro` and `$__macro(args)` in `sql`.
pub fn expand(sql: &str, ctx: &QueryContext) -> Result<Expanded, String> {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut group = None;
    let mut rest = sql;
    while let Some(pos) = rest.find("$__") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 3..];
        let name_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        let name = &after[..name_len];
        let mut tail = &after[name_len..];
        let mut args: Option<Vec<String>> = None;
        if let Some(open) = tail.strip_prefix('(') {
            let mut depth = 1;
            let mut quote: Option<char> = None;
            let mut end = None;
            for (i, c) in open.char_indices() {
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, '\'' | '"') => quote = Some(c),
                    (None, '(') => depth += 1,
                    (None, ')') => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| format!("macro $__{name}: missing closing parenthesis"))?;
            args = Some(split_args(&open[..end]));
            tail = &open[end + 1..];
        }
        let args = args.unwrap_or_default();
        let want = |n: usize| -> Result<(), String> {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!("macro $__{name} takes {n} argument(s), got {}", args.len()))
            }
        };
        let expansion = match name {
            "timeFilter" => {
                want(1)?;
                format!("({} BETWEEN {} AND {})", args[0], literal(ctx.from), literal(ctx.to))
            }
            "timeFrom" => {
                want(0)?;
                literal(ctx.from)
            }
            "timeTo" => {
                want(0)?;
                literal(ctx.to)
            }
            "unixEpochFilter" => {
                want(1)?;
                format!("({} >= {} AND {} <= {})", args[0], ctx.from.timestamp(), args[0], ctx.to.timestamp())
            }
            "unixEpochFrom" => {
                want(0)?;
                ctx.from.timestamp().to_string()
            }
            "unixEpochTo" => {
                want(0)?;
                ctx.to.timestamp().to_string()
            }
            "timeGroup" | "timeGroupAlias" => {
                if !(2..=3).contains(&args.len()) {
                    return Err(format!("macro $__{name} takes (column, interval[, fill]), got {} argument(s)", args.len()));
                }
                let us = parse_interval(&args[1], ctx)?;
                let fill = match args.get(2) {
                    Some(f) => parse_fill(f)?,
                    None => Fill::Null,
                };
                group = Some((us, fill));
                let alias = if name == "timeGroupAlias" { " AS time" } else { "" };
                format!("make_timestamp((epoch_us({}) // {us}) * {us}){alias}", args[0])
            }
            "interval" => format!("INTERVAL '{} milliseconds'", interval_ms(ctx)),
            "interval_ms" => interval_ms(ctx).to_string(),
            other => return Err(format!("unknown macro $__{other}")),
        };
        out.push_str(&expansion);
        rest = tail;
    }
    out.push_str(rest);
    Ok(Expanded { sql: out, group })
}

/// Checks with DuckDB's parser that `sql` is exactly one SELECT statement.
fn check_single_select(conn: &duckdb::Connection, sql: &str) -> Result<(), String> {
    let json: String =
        conn.query_row("SELECT json_serialize_sql($1::VARCHAR)", [sql], |r| r.get(0)).map_err(|e| format!("checking the SQL: {e}"))?;
    let parsed: serde_json::Value = serde_json::from_str(&json).map_err(|e| format!("checking the SQL: {e}"))?;
    if parsed.get("error").and_then(|e| e.as_bool()) == Some(true) {
        let msg = parsed.get("error_message").and_then(|m| m.as_str()).unwrap_or("unparsable");
        return Err(if msg.contains("Only SELECT") {
            "raw SQL is read-only: only a single SELECT (or WITH … SELECT, FROM …, DESCRIBE, SHOW) statement is allowed".to_string()
        } else {
            format!("SQL error: {msg}")
        });
    }
    match parsed.get("statements").and_then(|s| s.as_array()).map(Vec::len) {
        Some(1) => Ok(()),
        Some(0) | None => Err("raw SQL is empty".into()),
        Some(n) => Err(format!("raw SQL must be one statement, got {n}")),
    }
}

/// Table functions raw SQL may call over the masked views: none of them reads a table by name.
const MASKED_TABLE_FUNCTIONS: &[&str] = &[
    "range",
    "generate_series",
    "unnest",
    "json_each",
    "json_tree",
    "duckdb_tables",
    "duckdb_views",
    "duckdb_columns",
    "duckdb_schemas",
    "duckdb_types",
    "duckdb_functions",
    "duckdb_settings",
];

/// Schemas raw SQL may name over the masked views: the views' own and the catalog's metadata.
const MASKED_SCHEMAS: &[&str] = &[crate::store::masked::SCHEMA, "information_schema", "pg_catalog"];

/// For a reader without content access: refuses SQL that could reach the tables past the
/// masked views, from DuckDB's own parse of it. Unqualified names resolve to the views (the
/// connection's search path); a schema or database named (`main.events`, `claudecode.events`),
/// or a table function that reads a table by name (`query_table`, `query`, `pragma_storage_info`),
/// is refused.
fn check_masked_sql(conn: &duckdb::Connection, sql: &str, content_role: super::access::Role) -> Result<(), String> {
    let json: String =
        conn.query_row("SELECT json_serialize_sql($1::VARCHAR)", [sql], |r| r.get(0)).map_err(|e| format!("checking the SQL: {e}"))?;
    let parsed: serde_json::Value = serde_json::from_str(&json).map_err(|e| format!("checking the SQL: {e}"))?;
    let because = |what: String| {
        format!(
            "{what}: content (prompts, responses, tool details, commands, file paths, error messages) is shown to {}s and above only, \
             so your raw SQL reads events, spans and their *_full views with it hidden, by their plain names",
            content_role.name()
        )
    };
    let mut stack = vec![&parsed];
    while let Some(node) = stack.pop() {
        match node {
            serde_json::Value::Array(items) => stack.extend(items),
            serde_json::Value::Object(map) => {
                // table references name theirs `catalog_name`, `schema_name`; functions `catalog`, `schema`
                let function = map.get("class").and_then(|c| c.as_str()) == Some("FUNCTION");
                let keys = if function { ["catalog", "schema"] } else { ["catalog_name", "schema_name"] };
                for key in keys {
                    let named = map.get(key).and_then(|v| v.as_str()).filter(|n| !n.is_empty());
                    let allowed =
                        key.starts_with("schema") && named.is_some_and(|n| MASKED_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(n)));
                    if let (Some(name), false) = (named, allowed) {
                        return Err(because(format!("the SQL names {name:?}")));
                    }
                }
                if map.get("type").and_then(|t| t.as_str()) == Some("TABLE_FUNCTION") {
                    let name = map.get("function").and_then(|f| f.get("function_name")).and_then(|n| n.as_str()).unwrap_or("");
                    if !MASKED_TABLE_FUNCTIONS.iter().any(|f| f.eq_ignore_ascii_case(name)) {
                        return Err(because(format!("the table function {name:?} is not available")));
                    }
                }
                stack.extend(map.values());
            }
            _ => {}
        }
    }
    Ok(())
}

/// Runs `f` inside a transaction that is rolled back, interrupting it after `timeout`.
fn run_sandboxed<T>(conn: &duckdb::Connection, timeout: Duration, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    conn.execute_batch("BEGIN TRANSACTION").map_err(|e| format!("starting the query transaction: {e}"))?;
    let (done, wait) = mpsc::channel::<()>();
    let interrupt = conn.interrupt_handle();
    let watchdog = std::thread::spawn(move || {
        if wait.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
            interrupt.interrupt();
            true
        } else {
            false
        }
    });
    let result = f();
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    if let Err(e) = conn.execute_batch("ROLLBACK") {
        tracing::warn!(error = %e, "rolling back a raw SQL query");
    }
    match result {
        Err(_) if timed_out => Err(format!("query cancelled: it ran longer than the {} s limit", timeout.as_secs_f64())),
        other => other,
    }
}

/// How a result column of the user's SQL is selected so that every DuckDB type reaches Grafana
/// whole (the Arrow export alone loses BIT, BIGNUM, UHUGEINT and time zones, and sends nested
/// types Grafana cannot read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conversion {
    /// Converted from its Arrow form (numbers, text, times, decimals, BLOB, UUID, ENUM).
    Arrow,
    /// JSON as it is.
    Json,
    /// LIST, ARRAY, STRUCT, MAP, UNION: as JSON.
    ToJson,
    /// HUGEINT, UHUGEINT, BIGNUM: as text, then 64-bit integers where every value fits.
    IntegerText,
    /// BIT, TIME, TIME WITH TIME ZONE, INTERVAL and anything else: DuckDB's text form.
    Text,
}

impl Conversion {
    fn of(duckdb_type: &str) -> Conversion {
        let t = duckdb_type.trim();
        const ARROW: &[&str] = &[
            "BOOLEAN",
            "TINYINT",
            "SMALLINT",
            "INTEGER",
            "BIGINT",
            "UTINYINT",
            "USMALLINT",
            "UINTEGER",
            "UBIGINT",
            "FLOAT",
            "DOUBLE",
            "DATE",
            "TIMESTAMP",
            "TIMESTAMP WITH TIME ZONE",
            "TIMESTAMP_NS",
            "TIMESTAMP_MS",
            "TIMESTAMP_S",
            "UUID",
            "BLOB",
        ];
        if t == "JSON" {
            Conversion::Json
        } else if t.ends_with(']') || ["STRUCT(", "MAP(", "UNION("].iter().any(|p| t.starts_with(p)) {
            Conversion::ToJson
        } else if ["HUGEINT", "UHUGEINT", "BIGNUM", "VARINT"].contains(&t) {
            Conversion::IntegerText
        } else if ARROW.contains(&t) || t.starts_with("VARCHAR") || t.starts_with("DECIMAL(") || t.starts_with("ENUM(") {
            Conversion::Arrow
        } else {
            Conversion::Text
        }
    }

    fn select(self, column: &str) -> String {
        match self {
            Conversion::Arrow | Conversion::Json => column.to_string(),
            Conversion::ToJson => format!("to_json({column}) AS {column}"),
            Conversion::IntegerText | Conversion::Text => format!("CAST({column} AS VARCHAR) AS {column}"),
        }
    }
}

/// The result columns of `sql` (names as written, DuckDB types), from DuckDB's binder.
fn describe(conn: &duckdb::Connection, sql: &str) -> Result<Vec<(String, String)>, String> {
    let columns = |text: &str| -> Result<Vec<(String, String)>, String> {
        check_single_select(conn, text)?;
        let query = format!("SELECT column_name, column_type FROM (\n{text}\n)");
        let mut stmt = conn.prepare(&query).map_err(|e| format!("SQL error: {e}"))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(|e| format!("SQL error: {e}"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| format!("SQL error: {e}"))
    };
    // DESCRIBE of the statement keeps duplicate names as written; statements DESCRIBE does not
    // take (SHOW, DESCRIBE itself) are described as a subquery
    columns(&format!("DESCRIBE\n{sql}")).or_else(|_| columns(&format!("DESCRIBE SELECT * FROM (\n{sql}\n) AS raw_query")))
}

pub fn run(r: &Runner, q: &RawSqlQuery) -> Result<Vec<Frame>, QueryError> {
    let expanded = expand(&q.raw_sql, r.ctx)?;
    let user_sql = expanded.sql.trim().trim_end_matches(|c: char| c == ';' || c.is_whitespace()).to_string();
    if user_sql.is_empty() {
        return Err("rawSql is empty".into());
    }
    check_single_select(r.conn, &user_sql)?;
    if r.settings.access == crate::store::masked::Access::Masked {
        check_masked_sql(r.conn, &user_sql, r.settings.content_role)?;
    }
    let cap = r.ctx.limits.max_rows;
    let mut table = run_sandboxed(r.conn, r.ctx.limits.timeout, || {
        let columns = describe(r.conn, &user_sql)?;
        let conversions: Vec<Conversion> = columns.iter().map(|(_, t)| Conversion::of(t)).collect();
        // positional aliases: the user's names may repeat or need quoting; they are put back below
        let aliases: Vec<String> = (1..=columns.len()).map(|i| format!("c{i}")).collect();
        let select: Vec<String> = conversions.iter().zip(&aliases).map(|(c, a)| c.select(a)).collect();
        // The newline keeps a trailing `--` comment from swallowing the wrapper.
        let wrapped = format!("SELECT {} FROM (\n{user_sql}\n) AS raw_query({}) LIMIT {}", select.join(", "), aliases.join(", "), cap + 1);
        check_single_select(r.conn, &wrapped)?;
        let names: Vec<String> = columns.iter().map(|(name, _)| name.clone()).collect();
        let mut table = Sql { text: wrapped, params: vec![] }.run_named(r.conn, Some(&names)).map_err(|e| e.to_string())?;
        for (i, conversion) in conversions.iter().enumerate() {
            match conversion {
                Conversion::Json | Conversion::ToJson => table.json_at(i),
                Conversion::IntegerText => table.integers_from_text(i)?,
                _ => {}
            }
        }
        Ok(table)
    })?;
    if table.rows() > cap {
        table.truncate(cap);
        table.notices.push(Notice::warning(format!("the result was cut to the first {cap} rows (the raw SQL row limit)")));
    }
    let frame = match q.format {
        Format::TimeSeries => {
            let (grid, fill) = match expanded.group {
                Some((us, fill)) if fill != Fill::Null => (Grid::covering(r.ctx.from, r.ctx.to, us), fill),
                Some((_, fill)) => (None, fill),
                None => (None, Fill::Null),
            };
            let fields = pivot(&table, grid, fill, Units::None)?;
            let mut frame = super::series_frame("sql", fields, user_sql);
            frame.meta.notices = table.notices;
            frame
        }
        Format::Logs => {
            let mut meta = Meta::new(Some(FrameType::LogLines), Some(VisType::Logs), Some(user_sql));
            meta.notices = std::mem::take(&mut table.notices);
            Frame::new("sql", meta, if table.rows() > 0 { log_lines(table)? } else { vec![] })
        }
        Format::Table => table.into_frame("sql", user_sql, Units::None),
    };
    Ok(vec![frame])
}

/// A result as the data plane's log lines: the first time column as `timestamp`, the text column
/// `body` (else the first text column) as the line, `severity` (or `level`), `id` and a JSON
/// `labels` column where there are ones; the other columns follow as they are.
fn log_lines(table: Table) -> Result<Vec<Field>, QueryError> {
    let mut rest = table.fields;
    let mut take = |pick: &dyn Fn(&Field) -> bool, name: &str| -> Option<Field> {
        let i = rest.iter().position(pick)?;
        let mut f = rest.remove(i);
        f.name = name.to_string();
        Some(f)
    };
    let timestamp = take(&|f| f.kind() == Kind::Time, "timestamp");
    let severity = take(&|f| f.kind() == Kind::Text && (f.name == "severity" || f.name == "level"), "severity");
    let id = take(&|f| f.kind() == Kind::Text && f.name == "id", "id");
    let labels = take(&|f| f.kind() == Kind::Json && f.name == "labels", "labels");
    let body = take(&|f| f.kind() == Kind::Text && f.name == "body", "body").or_else(|| take(&|f| f.kind() == Kind::Text, "body"));
    let (Some(timestamp), Some(body)) = (timestamp, body) else {
        return Err(
            "format \"logs\" needs a time column and a text column for the line, e.g. SELECT time, event_name AS body FROM events".into()
        );
    };
    Ok([Some(timestamp), Some(body), severity, id, labels].into_iter().flatten().chain(rest).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> QueryContext {
        QueryContext { to: DateTime::from_timestamp(1_795_299_600, 0).unwrap(), ..crate::query::testing::hour() }
    }

    #[test]
    fn macros_expand() {
        let e = expand("SELECT $__timeGroupAlias(time, 5m, 0), count(*) FROM events WHERE $__timeFilter(time) GROUP BY 1", &ctx()).unwrap();
        assert_eq!(
            e.sql,
            "SELECT make_timestamp((epoch_us(time) // 300000000) * 300000000) AS time, count(*) FROM events \
             WHERE (time BETWEEN TIMESTAMP '2026-11-21 21:20:00.000000' AND TIMESTAMP '2026-11-21 22:20:00.000000') GROUP BY 1"
        );
        assert_eq!(e.group, Some((300_000_000, Fill::Value(0.0))));
        let e = expand("$__timeFrom() $__timeTo() $__interval $__interval_ms $__unixEpochFilter(t) $__unixEpochFrom()", &ctx()).unwrap();
        assert_eq!(
            e.sql,
            "TIMESTAMP '2026-11-21 21:20:00.000000' TIMESTAMP '2026-11-21 22:20:00.000000' INTERVAL '60000 milliseconds' 60000 \
             (t >= 1795296000 AND t <= 1795299600) 1795296000"
        );
        let e = expand("$__timeGroup(date_trunc('hour', time), $__interval, previous)", &ctx()).unwrap();
        assert_eq!(e.group, Some((60_000_000, Fill::Previous)));
        assert!(e.sql.starts_with("make_timestamp((epoch_us(date_trunc('hour', time))"));
    }

    #[test]
    fn macro_errors_are_clear() {
        assert_eq!(expand("$__nope()", &ctx()).unwrap_err(), "unknown macro $__nope");
        assert!(expand("$__timeFilter(time", &ctx()).unwrap_err().contains("closing parenthesis"));
        assert!(expand("$__timeFilter()", &ctx()).unwrap_err().contains("takes 1 argument"));
        assert!(expand("$__timeGroup(time, 5x)", &ctx()).unwrap_err().contains("unknown unit"));
        assert!(expand("$__timeGroup(time, 5m, sideways)", &ctx()).unwrap_err().contains("fill"));
    }

    #[test]
    fn only_one_select_passes_the_parser_check() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        assert!(check_single_select(&conn, "SELECT 1").is_ok());
        assert!(check_single_select(&conn, "WITH x AS (SELECT 1) FROM x").is_ok());
        for bad in ["DELETE FROM events", "SELECT 1; SELECT 2", "PRAGMA version", "SET threads = 1", "INSTALL httpfs", "ATTACH 'x.db'"] {
            assert!(check_single_select(&conn, bad).is_err(), "{bad}");
        }
        assert!(check_single_select(&conn, "SELEC 1").unwrap_err().starts_with("SQL error"));
    }
}
