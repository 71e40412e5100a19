//! Filters every typed query accepts: lists of sessions, users, models and teams (multi-value
//! variables) and ad hoc `key operator value` filters on any stored attribute. Keys map to typed
//! columns where the table has one, otherwise to the attribute (then resource) JSON; values are
//! always bound parameters.
use serde::{Deserialize, Deserializer};

use super::sql::Params;
use crate::store::schema::{AttrColumn, EVENT_COLUMNS, METRIC_COLUMNS, SPAN_COLUMNS};

/// The table a query reads; keys resolve differently per table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Events,
    Metrics,
    Spans,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::Metrics => "metric_points",
            Table::Spans => "spans",
        }
    }

    fn typed(self) -> &'static [AttrColumn] {
        match self {
            Table::Events => EVENT_COLUMNS,
            Table::Metrics => METRIC_COLUMNS,
            Table::Spans => SPAN_COLUMNS,
        }
    }

    /// The typed column holding attribute `key` (or named `key`).
    fn column_for(self, key: &str) -> Option<&'static AttrColumn> {
        self.typed().iter().find(|c| c.keys.first() == Some(&key) || c.column == key)
    }

    /// The `time` column of the table (spans: their start).
    pub fn time_column(self) -> &'static str {
        match self {
            Table::Spans => "start_time",
            _ => "time",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filters {
    #[serde(default, deserialize_with = "string_list")]
    pub sessions: Vec<String>,
    /// Matches user.id, user.email or user.account_uuid.
    #[serde(default, deserialize_with = "string_list")]
    pub users: Vec<String>,
    #[serde(default, deserialize_with = "string_list")]
    pub models: Vec<String>,
    /// The `team` resource attribute (from OTEL_RESOURCE_ATTRIBUTES).
    #[serde(default, deserialize_with = "string_list")]
    pub teams: Vec<String>,
    #[serde(default)]
    pub adhoc_filters: Vec<AdhocFilter>,
    /// The time span (µs, inclusive) that holds every event and metric point of `sessions`,
    /// when known (`Runner::session_span`): their scans read only that span, which changes no
    /// answer.
    #[serde(skip)]
    pub session_span: Option<(i64, i64)>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AdhocFilter {
    pub key: String,
    #[serde(default = "default_operator")]
    pub operator: String,
    #[serde(default)]
    pub value: String,
    /// Grafana's multi-value operators (`=|`, `!=|`) send the values here.
    #[serde(default)]
    pub values: Vec<String>,
}

fn default_operator() -> String {
    "=".into()
}

/// A multi-value variable as Grafana may interpolate it: a JSON array, one string, or the
/// `'a','b'` sqlstring form. "All" (`$__all`, `*`, empty) means no filter.
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
        Null(()),
    }
    let values = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => split_sqlstring(&s),
        OneOrMany::Many(v) => v.iter().flat_map(|s| split_sqlstring(s)).collect(),
        OneOrMany::Null(()) => vec![],
    };
    if values.iter().any(|v| v == "$__all" || v == "*" || v == "All") {
        return Ok(vec![]);
    }
    Ok(values.into_iter().filter(|v| !v.is_empty()).collect())
}

/// `'a','b'` → [a, b] (quotes doubled inside); anything else is one value.
fn split_sqlstring(s: &str) -> Vec<String> {
    let t = s.trim();
    if !(t.starts_with('\'') && t.ends_with('\'') && t.len() >= 2) {
        return vec![s.to_string()];
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = t.chars().peekable();
    let mut inside = false;
    while let Some(c) = chars.next() {
        match (inside, c) {
            (false, '\'') => inside = true,
            (false, _) => {} // separators
            (true, '\'') if chars.peek() == Some(&'\'') => {
                chars.next();
                cur.push('\'');
            }
            (true, '\'') => {
                inside = false;
                out.push(std::mem::take(&mut cur));
            }
            (true, c) => cur.push(c),
        }
    }
    out
}

/// SQL for the value of attribute `key` in `table`: the typed column when there is one, else the
/// attribute or, failing that, the resource attribute of that name.
///
/// A repository or branch key (`vcs.*`) is a property of the session: a record without it (a cost
/// or commit metric, an API call before the first git command) takes the value its session last
/// sent, so cost, commits and lines group by the repository and branch they were spent on.
pub fn key_expr(table: Table, key: &str, params: &mut Params) -> Result<String, String> {
    if canonical_key(key) == "project" {
        // the repository the session worked in, else the folder of imported history (`cwd`)
        let repository = key_expr(table, "vcs.repository.name", params)?;
        let folder = resolve(table, "cwd", params, true)?;
        return Ok(format!("coalesce({repository}, nullif(regexp_extract({folder}, '[^/\\\\]+$'), ''))"));
    }
    let own = resolve(table, key, params, true)?;
    let key = canonical_key(key);
    if !key.starts_with("vcs.") {
        return Ok(own);
    }
    let mut sources = Vec::new();
    for t in [Table::Events, Table::Metrics] {
        let value = resolve(t, key, params, true)?;
        let carriers = vcs_carriers(t, key, params);
        sources.push(format!(
            "SELECT session_id AS __s, time AS __t, {value} AS __v FROM {name} \
             WHERE session_id IS NOT NULL AND time BETWEEN $1 - {ATTRIBUTION_MARGIN} AND $2 + {ATTRIBUTION_MARGIN} \
             AND {value} IS NOT NULL{carriers}",
            name = t.name()
        ));
    }
    Ok(format!(
        "coalesce({own}, (SELECT arg_max(__v, __t) FROM ({}) __sv WHERE __s = {table}.session_id AND __v IS NOT NULL))",
        sources.join(" UNION ALL "),
        table = table.name()
    ))
}

/// The condition (` AND …`) that keeps the records of `table` that can carry repository key
/// `key` (see `repositories::SESSION_VCS_CTE`): prompts and tool results among events; of those,
/// when no typed column holds the key, only the ones whose JSON names it are parsed.
fn vcs_carriers(table: Table, key: &str, params: &mut Params) -> String {
    let key = canonical_key(key);
    let named = if table.column_for(key).is_some() {
        String::new()
    } else {
        let quoted = params.bind(format!("\"{key}\""));
        format!(" AND (contains(CAST(attributes AS VARCHAR), {quoted}) OR contains(CAST(resource AS VARCHAR), {quoted}))")
    };
    match table {
        Table::Events => format!(" AND event_name IN ('user_prompt', 'tool_result'){named}"),
        _ => named,
    }
}

/// The stored key a query's key names: short names for the common keys, else the key itself.
pub fn canonical_key(key: &str) -> &str {
    match key.trim() {
        "session" => "session.id",
        "user" => "user.id",
        "tool" => "tool_name",
        "event" | "event_name" => "event.name",
        "repository" => "vcs.repository.name",
        "repository_owner" => "vcs.owner.name",
        "repository_url" => "vcs.repository.url.full",
        "branch" => "vcs.ref.head.name",
        "commit_sha" => "vcs.ref.head.revision",
        "provider" => "anthropic.provider",
        other => other,
    }
}

/// `main`, `subagent` or `auxiliary`: who made a model call. Metrics carry the class as
/// `query_source`; events and spans carry the raw source (`sdk`, `repl_main_thread…`,
/// `agent:builtin:general-purpose` / `agent.builtin.…`), and a subagent's records its `agent_id`.
pub fn query_class_sql(table: Table) -> String {
    match table {
        Table::Metrics => "\"query_source\"".into(),
        Table::Events => crate::store::rollup::event_query_class_sql(),
        Table::Spans => crate::store::rollup::query_class_of("\"query_source_safe\"", "agent."),
    }
}

fn resolve(table: Table, key: &str, params: &mut Params, as_text: bool) -> Result<String, String> {
    let key = canonical_key(key);
    if key.is_empty() || key.len() > 256 {
        return Err(format!("attribute key {key:?} must be 1 to 256 characters"));
    }
    if key == "query_class" {
        return Ok(query_class_sql(table));
    }
    // history imported from transcripts, or telemetry
    if key == "data_source" {
        return Ok(format!(
            "(CASE WHEN scope_name = {} THEN 'transcript' ELSE 'telemetry' END)",
            params.bind(crate::ingest::transcript::TRANSCRIPT_SCOPE)
        ));
    }
    let own = match (table, key) {
        (Table::Events, "event.name") => Some("event_name"),
        (Table::Events, "severity" | "level") => Some(super::logs::SEVERITY_SQL),
        (Table::Metrics, "metric.name" | "metric_name") => Some("metric_name"),
        (Table::Spans, "span.name" | "name") => Some("name"),
        (Table::Spans | Table::Events, "trace_id" | "trace.id") => Some("trace_id"),
        _ => None,
    };
    if let Some(column) = own {
        return Ok(column.to_string());
    }
    if let Some(c) = table.column_for(key) {
        return Ok(match c.kind {
            crate::store::schema::ColumnKind::Text => format!("\"{}\"", c.column),
            _ if !as_text => format!("\"{}\"", c.column),
            _ => format!("CAST(\"{}\" AS VARCHAR)", c.column),
        });
    }
    if key.starts_with('$') || key.starts_with('/') {
        return Err(format!("attribute key {key:?} may not start with '$' or '/'"));
    }
    // A plain key (not a JSON path) looks the member up by name, dots included.
    let k = params.bind(key);
    Ok(format!("coalesce(json_extract_string(attributes, {k}), json_extract_string(resource, {k}))"))
}

/// The model as filters compare it: without a context-window suffix, so `claude-opus-4-8[1m]`
/// (the configured name Claude Code 2.1.197 puts on its cost and token metrics) is the same
/// model as `claude-opus-4-8` (the API id on its events).
pub fn model_name(expr: &str) -> String {
    format!("regexp_replace({expr}, '\\[[^\\]]*\\]$', '')")
}

/// How far around the query range the records a filtered record belongs to are looked for.
const ATTRIBUTION_MARGIN: &str = "INTERVAL 1 DAY";

/// A filter's condition on one value expression.
type Predicate<'a> = dyn Fn(&str, &mut Params) -> Result<String, String> + 'a;

/// The condition a filter on attribute `key` puts on the rows of `table`. A row that carries
/// the attribute is judged by its own value. A row that lacks it is judged by what it belongs
/// to: the model call that asked for it (`request_id`, tool calls and decisions of Claude
/// Code 2.1.332 and later), else its prompt, else its session; it is kept when any record
/// there carries a value that passes. So a model filter keeps the tool calls that model asked
/// for and the commits, pull requests and active time of the sessions that used it. A
/// repository or branch key (`vcs.*`) is judged by the session alone.
fn attributed(table: Table, key: &str, as_text: bool, predicate: &Predicate, params: &mut Params) -> Result<String, String> {
    let own = resolve(table, key, params, as_text)?;
    let direct = predicate(&own, params)?;
    // a repository or branch belongs to the session, not to the call or prompt that named it
    let session_scoped = canonical_key(key).starts_with("vcs.");
    // those keys are looked for only where Claude Code puts them
    let narrow = |t: Table, params: &mut Params| if session_scoped { vcs_carriers(t, key, params) } else { String::new() };
    let carriers = |level: &str, tables: &[Table], params: &mut Params| -> Result<String, String> {
        let mut parts = Vec::new();
        for t in tables {
            let value = resolve(*t, key, params, as_text)?;
            let passes = predicate(&value, params)?;
            let narrow = narrow(*t, params);
            parts.push(format!(
                "SELECT {level} FROM {name} WHERE {level} IS NOT NULL AND {value} IS NOT NULL AND {passes} \
                 AND {time} BETWEEN $1 - {ATTRIBUTION_MARGIN} AND $2 + {ATTRIBUTION_MARGIN}{narrow}",
                name = t.name(),
                time = t.time_column()
            ));
        }
        Ok(parts.join(" UNION "))
    };
    let mut arms = vec![format!("WHEN {own} IS NOT NULL THEN {direct}")];
    if table == Table::Events && !session_scoped {
        arms.push(format!("WHEN request_id IS NOT NULL THEN request_id IN ({})", carriers("request_id", &[Table::Events], params)?));
    }
    if table != Table::Metrics && !session_scoped {
        arms.push(format!(
            "WHEN prompt_id IS NOT NULL THEN prompt_id IN ({})",
            carriers("prompt_id", &[Table::Events, Table::Spans], params)?
        ));
    }
    arms.push(format!("ELSE coalesce(session_id IN ({}), false)", carriers("session_id", &[Table::Events, Table::Metrics], params)?));
    Ok(format!("(CASE {} END)", arms.join(" ")))
}

impl Filters {
    /// ` AND …` conditions for `table`, or "" when nothing is filtered. Sessions, users and teams
    /// are on every record; models and ad hoc keys may be on some only (see `attributed`).
    /// Nothing filtered.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
            && self.users.is_empty()
            && self.models.is_empty()
            && self.teams.is_empty()
            && self.adhoc_filters.is_empty()
    }

    pub fn clause(&self, table: Table, params: &mut Params) -> Result<String, String> {
        let mut parts = Vec::new();
        if !self.sessions.is_empty() {
            parts.push(format!("session_id IN ({})", params.bind_list(&self.sessions)));
            if let (Some(span), Table::Events | Table::Metrics) = (self.session_span, table) {
                parts.push(span_condition(span, params));
            }
        }
        if !self.users.is_empty() {
            let list = params.bind_list(&self.users);
            parts.push(format!("(user_id IN ({list}) OR user_email IN ({list}) OR user_account_uuid IN ({list}))"));
        }
        if !self.models.is_empty() {
            let models: Vec<String> = self.models.iter().map(|m| strip_context_suffix(m).to_string()).collect();
            let predicate = |value: &str, params: &mut Params| Ok(format!("{} IN ({})", model_name(value), params.bind_list(&models)));
            parts.push(attributed(table, "model", true, &predicate, params)?);
        }
        if !self.teams.is_empty() {
            let expr = key_expr(table, "team", params)?;
            parts.push(format!("{expr} IN ({})", params.bind_list(&self.teams)));
        }
        for f in &self.adhoc_filters {
            parts.push(adhoc(table, f, params)?);
        }
        Ok(parts.iter().map(|p| format!(" AND {p}")).collect())
    }
}

/// `time` within a span of µs (inclusive).
pub fn span_condition((from_us, to_us): (i64, i64), params: &mut Params) -> String {
    format!("time BETWEEN make_timestamp({}) AND make_timestamp({})", params.bind(from_us), params.bind(to_us))
}

/// `claude-opus-4-8[1m]` → `claude-opus-4-8`, as `model_name` does in SQL.
fn strip_context_suffix(model: &str) -> &str {
    match (model.rfind('['), model.ends_with(']')) {
        (Some(i), true) => &model[..i],
        _ => model,
    }
}

fn adhoc(table: Table, f: &AdhocFilter, params: &mut Params) -> Result<String, String> {
    let op = f.operator.trim();
    let numeric = matches!(op, "<" | ">" | "<=" | ">=");
    let value = f.value.clone();
    let values = if f.values.is_empty() { vec![f.value.clone()] } else { f.values.clone() };
    let number: Option<f64> = if numeric {
        Some(f.value.trim().parse().map_err(|_| format!("ad hoc filter {:?} {op}: {:?} is not a number", f.key, f.value))?)
    } else {
        None
    };
    let predicate = |expr: &str, params: &mut Params| -> Result<String, String> {
        Ok(match op {
            "=" => format!("{expr} = {}", params.bind(value.as_str())),
            "!=" => format!("{expr} IS DISTINCT FROM {}", params.bind(value.as_str())),
            "=~" => format!("regexp_full_match({expr}, {})", params.bind(value.as_str())),
            "!~" => format!("NOT coalesce(regexp_full_match({expr}, {}), false)", params.bind(value.as_str())),
            "<" | ">" | "<=" | ">=" => format!("TRY_CAST({expr} AS DOUBLE) {op} {}", params.bind(number.unwrap_or_default())),
            "=|" => format!("{expr} IN ({})", params.bind_list(&values)),
            "!=|" => format!("coalesce({expr} NOT IN ({}), true)", params.bind_list(&values)),
            other => {
                return Err(format!("ad hoc filter {:?}: unknown operator {other:?} (use =, !=, =~, !~, <, >, <=, >=, =|, !=|)", f.key))
            }
        })
    };
    attributed(table, &f.key, !numeric, &predicate, params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use serde_json::json;

    fn params() -> Params {
        Params::with_range(DateTime::UNIX_EPOCH, DateTime::UNIX_EPOCH)
    }

    #[test]
    fn lists_accept_arrays_strings_sqlstrings_and_all() {
        let f: Filters =
            serde_json::from_value(json!({"sessions": "'a','b''c'", "users": ["u1"], "models": "$__all", "teams": null})).unwrap();
        assert_eq!(f.sessions, ["a", "b'c"]);
        assert_eq!(f.users, ["u1"]);
        assert!(f.models.is_empty() && f.teams.is_empty());
        let f: Filters = serde_json::from_value(json!({"sessions": ["'x','y'"]})).unwrap();
        assert_eq!(f.sessions, ["x", "y"]);
    }

    #[test]
    fn keys_resolve_to_typed_columns_or_bound_json_lookups() {
        let mut p = params();
        assert_eq!(key_expr(Table::Events, "session.id", &mut p).unwrap(), "\"session_id\"");
        assert_eq!(key_expr(Table::Metrics, "type", &mut p).unwrap(), "\"type\"");
        assert_eq!(key_expr(Table::Events, "event.name", &mut p).unwrap(), "event_name");
        assert_eq!(key_expr(Table::Events, "status_code", &mut p).unwrap(), "CAST(\"status_code\" AS VARCHAR)");
        let e = key_expr(Table::Events, "team'; DROP TABLE events; --", &mut p).unwrap();
        assert_eq!(e, "coalesce(json_extract_string(attributes, $3), json_extract_string(resource, $3))");
        assert!(key_expr(Table::Events, "$.x", &mut p).is_err());
    }

    #[test]
    fn clauses_bind_every_value() {
        let f: Filters = serde_json::from_value(json!({
            "sessions": ["s1", "s2"],
            "adhocFilters": [{"key": "team", "operator": "=~", "value": "plat.*"}, {"key": "cost_usd", "operator": ">", "value": "0.01"}]
        }))
        .unwrap();
        let mut p = params();
        let c = f.clause(Table::Metrics, &mut p).unwrap();
        assert!(c.starts_with(" AND session_id IN ($3, $4) AND (CASE WHEN coalesce(json_extract_string(attributes, $5)"), "{c}");
        assert!(
            c.contains("THEN regexp_full_match(coalesce(json_extract_string(attributes, $5), json_extract_string(resource, $5)), $6)"),
            "{c}"
        );
        assert!(!c.contains("plat") && !c.contains("0.01"), "values are bound: {c}");
        let bad: Filters = serde_json::from_value(json!({"adhocFilters": [{"key": "k", "operator": "LIKE", "value": "x"}]})).unwrap();
        assert!(bad.clause(Table::Events, &mut params()).unwrap_err().contains("unknown operator"));
    }

    #[test]
    fn records_without_the_attribute_follow_their_request_prompt_or_session() {
        let f: Filters = serde_json::from_value(json!({"models": ["claude-opus-4-8[1m]"]})).unwrap();
        let mut p = params();
        let events = f.clause(Table::Events, &mut p).unwrap();
        assert!(events.contains("WHEN \"model\" IS NOT NULL THEN regexp_replace(\"model\""), "{events}");
        assert!(events.contains("WHEN request_id IS NOT NULL THEN request_id IN (SELECT request_id FROM events"), "{events}");
        assert!(events.contains("WHEN prompt_id IS NOT NULL THEN prompt_id IN (SELECT prompt_id FROM events"), "{events}");
        assert!(events.contains("ELSE coalesce(session_id IN (SELECT session_id FROM events"), "{events}");
        let metrics = f.clause(Table::Metrics, &mut params()).unwrap();
        assert!(!metrics.contains("request_id") && !metrics.contains("prompt_id"), "metrics belong to sessions: {metrics}");
        assert_eq!(strip_context_suffix("claude-opus-4-8[1m]"), "claude-opus-4-8");
        assert_eq!(strip_context_suffix("claude-opus-4-8"), "claude-opus-4-8");
    }
}
