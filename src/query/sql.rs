//! SQL text with its bound parameters. Every value that comes from a query (ids, names, regexes,
//! limits, the time range) is bound as `$n`; only fixed fragments are ever part of the text.
use chrono::{DateTime, Utc};
use duckdb::types::{TimeUnit, Value};
use duckdb::Connection;

use super::table::Table;
use super::QueryError;

/// A query's SQL with its parameters, kept together for the query inspector.
#[derive(Debug, Clone)]
pub struct Sql {
    pub text: String,
    pub params: Vec<Value>,
}

impl Sql {
    /// Runs the SQL and converts its result. A failure of DuckDB's is the plugin's unless the
    /// input was at fault (an invalid regex or value in a filter).
    pub fn run(&self, conn: &Connection) -> Result<Table, QueryError> {
        self.run_named(conn, None)
    }

    /// As `run`, with the result's columns named `names` (raw SQL selects positional aliases).
    pub fn run_named(&self, conn: &Connection, names: Option<&[String]>) -> Result<Table, QueryError> {
        CAPTURED.with(|c| {
            if let Some(list) = c.borrow_mut().as_mut() {
                list.push(self.clone());
            }
        });
        let failed = |what: &str, e: duckdb::Error| {
            let message = format!("{what}: {e}");
            if message.contains("Invalid Input Error") || message.contains("Conversion Error") {
                QueryError::Invalid(message)
            } else {
                QueryError::Failed(message)
            }
        };
        let started = std::time::Instant::now();
        let mut stmt = conn.prepare(&self.text).map_err(|e| failed("preparing query", e))?;
        let prepared = started.elapsed();
        let schema = stmt.query_arrow(duckdb::params_from_iter(self.params.iter())).map_err(|e| failed("running query", e))?.get_schema();
        // stepped here rather than through the Arrow iterator, which panics on a failed fetch
        let mut batches = Vec::new();
        while let Some(chunk) = stmt.step().map_err(|e| failed("fetching the result", e))? {
            batches.push(duckdb::arrow::record_batch::RecordBatch::from(&chunk));
        }
        let table = Table::from_batches(&schema, &batches, names).map_err(QueryError::Failed)?;
        tracing::debug!(
            prepare_ms = prepared.as_secs_f64() * 1000.0,
            total_ms = started.elapsed().as_secs_f64() * 1000.0,
            rows = table.rows(),
            sql = %self.describe(),
            "query ran"
        );
        Ok(table)
    }

    /// SQL and parameter values as the query inspector shows them.
    pub fn describe(&self) -> String {
        if self.params.is_empty() {
            return self.text.trim().to_string();
        }
        let params: Vec<String> = self.params.iter().map(describe_value).collect();
        format!("{}\n-- parameters: [{}]", self.text.trim(), params.join(", "))
    }
}

fn describe_value(v: &Value) -> String {
    match v {
        Value::Timestamp(_, us) => DateTime::from_timestamp_micros(*us).map(|t| format!("'{}'", t.to_rfc3339())).unwrap_or_default(),
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Value::BigInt(i) => i.to_string(),
        Value::Double(f) => f.to_string(),
        other => format!("{other:?}"),
    }
}

thread_local! {
    /// SQL run on this thread while `capture` is active.
    static CAPTURED: std::cell::RefCell<Option<Vec<Sql>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` and returns the SQL statements it ran on this thread: the benchmark times exactly
/// these straight in DuckDB to compare with the plugin.
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<Sql>) {
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let out = f();
    let sqls = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (out, sqls)
}

/// Collects parameter values while SQL text is assembled; `bind` returns the placeholder.
/// `$1` and `$2` are always the start and end of the query's time range.
#[derive(Debug, Clone)]
pub struct Params(Vec<Value>);

impl Params {
    pub fn with_range(from: DateTime<Utc>, to: DateTime<Utc>) -> Params {
        Params(vec![timestamp(from), timestamp(to)])
    }

    /// No range parameters (queries not bound to the time range, such as a trace by id).
    pub fn empty() -> Params {
        Params(vec![])
    }

    pub fn bind(&mut self, value: impl Into<BindValue>) -> String {
        self.0.push(value.into().0);
        format!("${}", self.0.len())
    }

    /// `$a, $b, …` for a list of values, for `IN (…)`.
    pub fn bind_list(&mut self, values: &[String]) -> String {
        values.iter().map(|v| self.bind(v.as_str())).collect::<Vec<_>>().join(", ")
    }

    pub fn into_sql(self, text: impl Into<String>) -> Sql {
        Sql { text: text.into(), params: self.0 }
    }
}

pub fn timestamp(t: DateTime<Utc>) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, t.timestamp_micros())
}

/// A value `Params::bind` accepts.
pub struct BindValue(Value);

impl From<&str> for BindValue {
    fn from(s: &str) -> Self {
        BindValue(Value::Text(s.to_string()))
    }
}
impl From<String> for BindValue {
    fn from(s: String) -> Self {
        BindValue(Value::Text(s))
    }
}
impl From<i64> for BindValue {
    fn from(i: i64) -> Self {
        BindValue(Value::BigInt(i))
    }
}
impl From<f64> for BindValue {
    fn from(f: f64) -> Self {
        BindValue(Value::Double(f))
    }
}
impl From<DateTime<Utc>> for BindValue {
    fn from(t: DateTime<Utc>) -> Self {
        BindValue(timestamp(t))
    }
}
