//! Rollups: per-hour aggregates of the rows, so dashboards read thousands of summary rows
//! instead of millions of events.
//!
//! Every rollup is one GROUP BY over its source table: `hour` plus its keys, and for each value a
//! row aggregate (how an hour's rows are summarised) and a merge aggregate (how summaries of
//! several hours, or a summary and rows, are combined). Queries read a summary for every hour
//! of their range that is settled and the rows for the rest (see `query::rollup`).
//!
//! Consistency: `rollup_dirty` lists the hours whose summaries may be out of date. Whatever
//! changes rows (the writer's commits, imports replacing calls, retention) adds their hours to
//! it in the same transaction as the change, so a query never takes a summary that misses rows.
//! The writer rebuilds dirty hours once no write has touched them for a moment, in one
//! transaction per run of hours. Any hour not listed holds exactly the summary of its rows
//! (an hour without rows, none).
use std::sync::LazyLock;

use duckdb::{params, Connection};

use super::rows::Micros;
use crate::ingest::transcript::TRANSCRIPT_SCOPE;

pub const HOUR_US: Micros = 3_600_000_000;

/// The hour (µs since the epoch, UTC) holding `t_us`.
pub fn hour_of(t_us: Micros) -> Micros {
    t_us.div_euclid(HOUR_US) * HOUR_US
}

/// One summarised column.
#[derive(Debug)]
pub struct RollupValue {
    pub name: String,
    pub sql_type: &'static str,
    /// Aggregate over source rows.
    pub row: String,
    /// Aggregate over rows of this rollup (and row summaries) giving the same answer.
    pub merge: String,
}

/// How far around its own rows a rollup may look up others (a tool result's decision): a row
/// written into an hour makes this many hours on each side dirty where such lookups exist.
pub const LOOKUP_HOURS: i64 = 1;

#[derive(Debug)]
pub struct Rollup {
    pub table: &'static str,
    /// `events`, `metric_points`, or a FROM item over one of them whose `{wide}` stands for its
    /// rows' range widened by `LOOKUP_HOURS`; `time` is the column hours are taken from.
    pub source: String,
    /// Which source rows it summarises.
    pub filter: String,
    /// (column, type, expression over the source row).
    pub keys: Vec<(&'static str, &'static str, String)>,
    pub values: Vec<RollupValue>,
}

fn value(name: impl Into<String>, sql_type: &'static str, row: impl Into<String>, merge: impl Into<String>) -> RollupValue {
    RollupValue { name: name.into(), sql_type, row: row.into(), merge: merge.into() }
}

fn sum(name: &'static str, sql_type: &'static str, row: impl Into<String>) -> RollupValue {
    value(name, sql_type, row, format!("sum({name})"))
}

fn any(name: &'static str, sql_type: &'static str) -> RollupValue {
    value(name, sql_type, format!("any_value({name})"), format!("any_value({name})"))
}

const API_REQUEST: &str = "event_name = 'api_request'";

/// The repository keys the sessions table attributes (see `query::repositories::SESSION_VCS_CTE`).
pub const VCS_KEYS: [(&str, &str); 5] = [
    ("repository", "vcs_repository"),
    ("owner", "vcs_owner"),
    ("repository_url", "vcs_repository_url"),
    ("branch", "vcs_branch"),
    ("commit_sha", "vcs_commit"),
];

/// The latest value of each repository key and when it was seen; merged by that time.
fn vcs_values() -> Vec<RollupValue> {
    VCS_KEYS
        .iter()
        .flat_map(|(name, column)| {
            let at = format!("{name}_at");
            [
                value(
                    *name,
                    "VARCHAR",
                    format!("arg_max({column}, time) FILTER (WHERE {column} IS NOT NULL)"),
                    format!("arg_max({name}, {at}) FILTER (WHERE {name} IS NOT NULL)"),
                ),
                value(at.clone(), "TIMESTAMP", format!("max(time) FILTER (WHERE {column} IS NOT NULL)"), format!("max({at})")),
            ]
        })
        .collect()
}

fn vcs_present() -> String {
    format!("coalesce({}) IS NOT NULL", VCS_KEYS.map(|(_, c)| c).join(", "))
}

/// Per session and hour, what the repositories and fleet tables sum over its events.
pub static SESSION_EVENTS: LazyLock<Rollup> = LazyLock::new(|| {
    let api = |agg: &str| format!("{agg} FILTER (WHERE {API_REQUEST})");
    Rollup {
        table: "rollup_session_events",
        source: "events".into(),
        filter: "session_id IS NOT NULL".into(),
        keys: vec![("session_id", "VARCHAR", "session_id".into())],
        values: vec![
            any("user_id", "VARCHAR"),
            value("first_seen", "TIMESTAMP", "min(time)", "min(first_seen)"),
            value("last_seen", "TIMESTAMP", "max(time)", "max(last_seen)"),
            sum("api_calls", "BIGINT", api("count(*)")),
            sum("cost_usd", "DOUBLE", api("sum(cost_usd)")),
            sum("imported_calls", "BIGINT", format!("count(*) FILTER (WHERE scope_name = '{TRANSCRIPT_SCOPE}')")),
            sum(
                "subagent_cost_usd",
                "DOUBLE",
                format!("sum(cost_usd) FILTER (WHERE {API_REQUEST} AND (agent_id IS NOT NULL OR query_source LIKE 'agent:%'))"),
            ),
            sum("input_tokens", "BIGINT", api("sum(input_tokens)")),
            sum("output_tokens", "BIGINT", api("sum(output_tokens)")),
            sum("cache_read_tokens", "BIGINT", api("sum(cache_read_tokens)")),
            sum("cache_creation_tokens", "BIGINT", api("sum(cache_creation_tokens)")),
            sum("tool_calls", "BIGINT", "count(*) FILTER (WHERE event_name = 'tool_result')"),
            sum("tool_failures", "BIGINT", "count(*) FILTER (WHERE event_name = 'tool_result' AND success = false)"),
            sum("api_errors", "BIGINT", "count(*) FILTER (WHERE event_name = 'api_error')"),
            sum("events", "BIGINT", "count(*)"),
            any("app_version", "VARCHAR"),
            any("terminal_type", "VARCHAR"),
            any("resource", "JSON"),
        ],
    }
});

/// Per session and hour, what the repositories and fleet tables sum over its metric points.
pub static SESSION_METRICS: LazyLock<Rollup> = LazyLock::new(|| {
    let metric = |name: &str, extra: &str| format!("sum(increment) FILTER (WHERE metric_name = 'claude_code.{name}'{extra})");
    let tokens = |t: &str| metric("token.usage", &format!(" AND type = '{t}'"));
    Rollup {
        table: "rollup_session_metrics",
        source: "metric_points".into(),
        filter: "session_id IS NOT NULL".into(),
        keys: vec![("session_id", "VARCHAR", "session_id".into())],
        values: vec![
            any("user_id", "VARCHAR"),
            value("first_seen", "TIMESTAMP", "min(coalesce(start_time, time))", "min(first_seen)"),
            value("last_seen", "TIMESTAMP", "max(time)", "max(last_seen)"),
            sum("cost_usd", "DOUBLE", metric("cost.usage", "")),
            sum("subagent_cost_usd", "DOUBLE", metric("cost.usage", " AND query_source = 'subagent'")),
            sum("tokens", "DOUBLE", metric("token.usage", "")),
            sum("input_tokens", "DOUBLE", tokens("input")),
            sum("output_tokens", "DOUBLE", tokens("output")),
            sum("cache_read_tokens", "DOUBLE", tokens("cacheRead")),
            sum("cache_creation_tokens", "DOUBLE", tokens("cacheCreation")),
            sum("lines_added", "DOUBLE", metric("lines_of_code.count", " AND type = 'added'")),
            sum("lines_removed", "DOUBLE", metric("lines_of_code.count", " AND type = 'removed'")),
            sum("commits", "DOUBLE", metric("commit.count", "")),
            sum("pull_requests", "DOUBLE", metric("pull_request.count", "")),
            sum("active_time_s", "DOUBLE", metric("active_time.total", "")),
            any("app_version", "VARCHAR"),
            any("terminal_type", "VARCHAR"),
            any("resource", "JSON"),
        ],
    }
});

/// Per session and hour, the latest repository keys of prompts and tool results.
pub static SESSION_VCS_EVENTS: LazyLock<Rollup> = LazyLock::new(|| Rollup {
    table: "rollup_session_vcs_events",
    source: "events".into(),
    filter: format!("event_name IN ('user_prompt', 'tool_result') AND session_id IS NOT NULL AND {}", vcs_present()),
    keys: vec![("session_id", "VARCHAR", "session_id".into())],
    values: vcs_values(),
});

/// Per session and hour, the latest repository keys of metric points.
pub static SESSION_VCS_METRICS: LazyLock<Rollup> = LazyLock::new(|| Rollup {
    table: "rollup_session_vcs_metrics",
    source: "metric_points".into(),
    filter: format!("session_id IS NOT NULL AND {}", vcs_present()),
    keys: vec![("session_id", "VARCHAR", "session_id".into())],
    values: vcs_values(),
});

fn described_values(provider: &str, custom_base_url: &str) -> Vec<RollupValue> {
    let resource = |key: &str| format!("any_value(json_extract_string(resource, '{key}'))");
    vec![
        value("provider", "VARCHAR", format!("any_value({provider})"), "any_value(provider)"),
        value("custom_base_url", "VARCHAR", format!("any_value({custom_base_url})"), "any_value(custom_base_url)"),
        value("os_type", "VARCHAR", resource("os.type"), "any_value(os_type)"),
        value("host_arch", "VARCHAR", resource("host.arch"), "any_value(host_arch)"),
        value("service_version", "VARCHAR", resource("service.version"), "any_value(service_version)"),
    ]
}

/// Per session and hour, what its prompts say about where Claude Code runs (the fleet table).
pub static SESSION_DESCRIBED_EVENTS: LazyLock<Rollup> = LazyLock::new(|| Rollup {
    table: "rollup_session_described_events",
    source: "events".into(),
    filter: "event_name = 'user_prompt' AND session_id IS NOT NULL".into(),
    keys: vec![("session_id", "VARCHAR", "session_id".into())],
    values: described_values("provider", "CAST(custom_base_url AS VARCHAR)"),
});

/// The same from its session count and cost points.
pub static SESSION_DESCRIBED_METRICS: LazyLock<Rollup> = LazyLock::new(|| Rollup {
    table: "rollup_session_described_metrics",
    source: "metric_points".into(),
    filter: "metric_name IN ('claude_code.session.count', 'claude_code.cost.usage') AND session_id IS NOT NULL".into(),
    keys: vec![("session_id", "VARCHAR", "session_id".into())],
    values: described_values(
        "json_extract_string(attributes, 'anthropic.provider')",
        "json_extract_string(attributes, 'anthropic.custom_base_url')",
    ),
});

/// Percentiles from rollups come from DDSketch histograms (Masson et al., VLDB 2019): a value
/// `x > 0` counts in bin `ceil(log_γ x)`, γ = (1 + α) / (1 − α), and a bin stands for
/// `2γ^i / (γ + 1)`, within α of every value in it. Bins of several hours add up, so
/// percentiles merge; each is within α = 1 % of the exact one (relative).
pub const SKETCH_ALPHA: f64 = 0.01;
/// The bin of values ≤ 0 (durations of 0 ms), standing for 0.
pub const ZERO_BIN: i32 = i32::MIN;

fn ln_gamma() -> f64 {
    ((1.0 + SKETCH_ALPHA) / (1.0 - SKETCH_ALPHA)).ln()
}

/// The bin (INTEGER) of `x`; NULL for NULL.
pub fn bin_sql(x: &str) -> String {
    format!("(CASE WHEN {x} > 0 THEN CAST(ceil(ln({x}) / {:?}) AS INTEGER) WHEN {x} <= 0 THEN {ZERO_BIN} END)", ln_gamma())
}

/// A histogram of `value` per `keys` over the source rows matching `filter`: per `bin`, its
/// count `n` and the smallest and largest value in it (`lo`, `hi`; an estimate is kept between
/// them, so a bin of one value gives it exactly).
fn sketch(table: &'static str, source: String, filter: String, keys: Vec<(&'static str, &'static str, String)>, value: &str) -> Rollup {
    let mut keys = keys;
    keys.push(("bin", "INTEGER", bin_sql(value)));
    Rollup {
        table,
        source,
        filter: format!("({filter}) AND {value} IS NOT NULL"),
        keys,
        values: vec![
            sum("n", "BIGINT", "count(*)"),
            RollupValue { name: "lo".into(), sql_type: "DOUBLE", row: format!("min({value})"), merge: "min(lo)".into() },
            RollupValue { name: "hi".into(), sql_type: "DOUBLE", row: format!("max({value})"), merge: "max(hi)".into() },
        ],
    }
}

/// Who made a model call (main loop, subagent, auxiliary) from the raw query source a record
/// carries in `source` and the prefix subagent sources start with; `query::filters` groups by
/// it, and the rollups of events with it.
pub fn query_class_of(source: &str, prefix: &str) -> String {
    format!(
        "(CASE WHEN agent_id IS NOT NULL OR {source} LIKE '{prefix}%' THEN 'subagent' \
         WHEN {source} IS NULL THEN NULL \
         WHEN {source} IN ('sdk', 'main') OR {source} LIKE 'repl_main_thread%' THEN 'main' ELSE 'auxiliary' END)"
    )
}

/// The query class of an event.
pub fn event_query_class_sql() -> String {
    query_class_of("\"query_source\"", "agent:")
}

/// The agents table's groups of API calls: query class and agent.
fn agent_call_keys() -> Vec<(&'static str, &'static str, String)> {
    let class = event_query_class_sql();
    vec![
        ("query_class", "VARCHAR", format!("coalesce({class}, '(none)')")),
        ("agent", "VARCHAR", format!("coalesce(agent_name, CASE WHEN {class} = 'subagent' THEN '(unknown)' ELSE '(none)' END)")),
    ]
}

/// API calls per query class and agent: count, cost and tokens (the agents table).
pub static AGENT_CALLS: LazyLock<Rollup> = LazyLock::new(|| Rollup {
    table: "rollup_agent_calls",
    source: "events".into(),
    filter: API_REQUEST.into(),
    keys: agent_call_keys(),
    values: vec![
        sum("api_requests", "BIGINT", "count(*)"),
        sum("cost_usd", "DOUBLE", "sum(cost_usd)"),
        sum("input_tokens", "BIGINT", "sum(input_tokens)"),
        sum("output_tokens", "BIGINT", "sum(output_tokens)"),
        sum("cache_read_tokens", "BIGINT", "sum(cache_read_tokens)"),
        sum("cache_creation_tokens", "BIGINT", "sum(cache_creation_tokens)"),
    ],
});

/// Their durations.
pub static AGENT_CALL_DURATIONS: LazyLock<Rollup> =
    LazyLock::new(|| sketch("rollup_agent_call_durations", "events".into(), API_REQUEST.into(), agent_call_keys(), "duration_ms"));

const SUBAGENT_COMPLETED: &str = "event_name = 'subagent_completed'";

fn agent_run_keys() -> Vec<(&'static str, &'static str, String)> {
    vec![("agent", "VARCHAR", "coalesce(agent_type, '(unknown)')".into())]
}

/// Subagent runs per agent type: runs and tool uses.
pub static AGENT_RUNS: LazyLock<Rollup> = LazyLock::new(|| Rollup {
    table: "rollup_agent_runs",
    source: "events".into(),
    filter: SUBAGENT_COMPLETED.into(),
    keys: agent_run_keys(),
    values: vec![sum("runs", "BIGINT", "count(*)"), sum("tool_uses", "BIGINT", "sum(total_tool_uses)")],
});

/// Their durations.
pub static AGENT_RUN_DURATIONS: LazyLock<Rollup> =
    LazyLock::new(|| sketch("rollup_agent_run_durations", "events".into(), SUBAGENT_COMPLETED.into(), agent_run_keys(), "duration_ms"));

const HOOK_RUN: &str = "event_name = 'hook_execution_complete'";

fn hook_keys() -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("hook_event", "VARCHAR", "coalesce(hook_event, '(none)')".into()),
        ("hook_name", "VARCHAR", "coalesce(hook_name, '(none)')".into()),
    ]
}

/// Hook executions per hook event and name: what they ran and fed back (the hooks table).
pub static HOOK_RUNS: LazyLock<Rollup> = LazyLock::new(|| Rollup {
    table: "rollup_hook_runs",
    source: "events".into(),
    filter: HOOK_RUN.into(),
    keys: hook_keys(),
    values: vec![
        sum("executions", "BIGINT", "count(*)"),
        sum("hooks_run", "BIGINT", "sum(num_hooks)"),
        sum("successes", "BIGINT", "sum(num_success)"),
        sum("blocking", "BIGINT", "sum(num_blocking)"),
        sum("non_blocking_errors", "BIGINT", "sum(num_non_blocking_error)"),
        sum("cancelled", "BIGINT", "sum(num_cancelled)"),
        sum("total_duration_ms", "DOUBLE", "sum(duration_ms)"),
        sum("stdout_chars", "BIGINT", "sum(stdout_chars)"),
        sum("additional_context_chars", "BIGINT", "sum(additional_context_chars)"),
        sum("system_message_chars", "BIGINT", "sum(system_message_chars)"),
    ],
});

/// Their durations.
pub static HOOK_DURATIONS: LazyLock<Rollup> =
    LazyLock::new(|| sketch("rollup_hook_durations", "events".into(), HOOK_RUN.into(), hook_keys(), "duration_ms"));

/// The sessions each hook ran in (their distinct count is not a sum).
pub static HOOK_SESSIONS: LazyLock<Rollup> = LazyLock::new(|| {
    let mut keys = hook_keys();
    keys.push(("session_id", "VARCHAR", "session_id".into()));
    Rollup {
        table: "rollup_hook_sessions",
        source: "events".into(),
        filter: format!("{HOOK_RUN} AND session_id IS NOT NULL"),
        keys,
        values: vec![sum("n", "BIGINT", "count(*)")],
    }
});

/// Hook registrations per hook event.
pub static HOOK_REGISTRATIONS: LazyLock<Rollup> = LazyLock::new(|| Rollup {
    table: "rollup_hook_registrations",
    source: "events".into(),
    filter: "event_name = 'hook_registered'".into(),
    keys: vec![("hook_event", "VARCHAR", "coalesce(hook_event, '(none)')".into())],
    values: vec![sum("registrations", "BIGINT", "count(*)")],
});

/// Tool results with the source of their call (`tool_source` is on the call's `tool_decision`,
/// same `tool_use_id`), looked up within an hour around them as the rows' query does.
fn tool_results_source() -> String {
    "(SELECT results.*, decided.tool_source AS decided_source FROM events results LEFT JOIN (
        SELECT tool_use_id, any_value(tool_source) AS tool_source FROM events
        WHERE event_name = 'tool_decision' AND tool_use_id IS NOT NULL AND {wide} GROUP BY 1
    ) decided USING (tool_use_id) WHERE results.event_name = 'tool_result')"
        .to_string()
}

fn tool_result_keys() -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("tool_name", "VARCHAR", "coalesce(tool_name, '(unknown)')".into()),
        ("tool_source", "VARCHAR", "coalesce(decided_source, '(none)')".into()),
    ]
}

/// Tool results per tool and source: calls, successes, failures (the tool success table).
pub static TOOL_RESULTS: LazyLock<Rollup> = LazyLock::new(|| Rollup {
    table: "rollup_tool_results",
    source: tool_results_source(),
    filter: "true".into(),
    keys: tool_result_keys(),
    values: vec![
        sum("calls", "BIGINT", "count(*)"),
        sum("successes", "BIGINT", "count(*) FILTER (WHERE success)"),
        sum("failures", "BIGINT", "count(*) FILTER (WHERE success = false)"),
    ],
});

/// Their durations.
pub static TOOL_RESULT_DURATIONS: LazyLock<Rollup> =
    LazyLock::new(|| sketch("rollup_tool_result_durations", tool_results_source(), "true".into(), tool_result_keys(), "duration_ms"));

/// Tool decisions per tool and source: accepts and rejects.
pub static TOOL_DECISIONS: LazyLock<Rollup> = LazyLock::new(|| Rollup {
    table: "rollup_tool_decisions",
    source: "events".into(),
    filter: "event_name = 'tool_decision'".into(),
    keys: vec![
        ("tool_name", "VARCHAR", "coalesce(tool_name, '(unknown)')".into()),
        ("tool_source", "VARCHAR", "coalesce(tool_source, '(none)')".into()),
    ],
    values: vec![
        sum("accepts", "BIGINT", "count(*) FILTER (WHERE decision = 'accept')"),
        sum("rejects", "BIGINT", "count(*) FILTER (WHERE decision = 'reject')"),
    ],
});

/// The `team` of a record as `query::filters` resolves the key: the record's attribute, else
/// its resource's (Claude Code takes it from `OTEL_RESOURCE_ATTRIBUTES`).
pub const TEAM_SQL: &str = "coalesce(json_extract_string(attributes, 'team'), json_extract_string(resource, 'team'))";

/// The folder a record's `cwd` ends in (the `project` of imported history without a repository).
pub const FOLDER_SQL: &str =
    "nullif(regexp_extract(coalesce(json_extract_string(attributes, 'cwd'), json_extract_string(resource, 'cwd')), '[^/\\\\]+$'), '')";

/// The metric keys stats, productivity and breakdowns filter on (`metric_name`, `type`,
/// `query_source`), with one group-by key.
fn metric_keys(group: (&'static str, &'static str, String)) -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("metric_name", "VARCHAR", "metric_name".into()),
        ("type", "VARCHAR", "\"type\"".into()),
        ("query_source", "VARCHAR", "query_source".into()),
        group,
    ]
}

/// Metric points per metric, type, query source and model, summed as `increment`: a measure's
/// own SQL (`sum(increment) FILTER (WHERE type = …)`) reads these rows unchanged. Stats,
/// productivity, cost by model and breakdowns by model, type or query class.
pub static METRIC_SUMS: LazyLock<Rollup> = LazyLock::new(|| Rollup {
    table: "rollup_metric_sums",
    source: "metric_points".into(),
    filter: "true".into(),
    keys: metric_keys(("model", "VARCHAR", "model".into())),
    values: vec![sum("increment", "DOUBLE", "sum(increment)")],
});

/// The same per team instead of model (breakdowns by team).
pub static METRIC_TEAMS: LazyLock<Rollup> = LazyLock::new(|| Rollup {
    table: "rollup_metric_teams",
    source: "metric_points".into(),
    filter: "true".into(),
    keys: metric_keys(("team", "VARCHAR", TEAM_SQL.into())),
    values: vec![sum("increment", "DOUBLE", "sum(increment)")],
});

/// Cost and token points per session with their own repository and `cwd` folder: breakdowns
/// by repository or project, which take a record's repository from its session when it has none.
pub static METRIC_SESSION_KEYS: LazyLock<Rollup> = LazyLock::new(|| Rollup {
    table: "rollup_metric_session_keys",
    source: "metric_points".into(),
    filter: "metric_name IN ('claude_code.cost.usage', 'claude_code.token.usage')".into(),
    keys: vec![
        ("session_id", "VARCHAR", "session_id".into()),
        ("metric_name", "VARCHAR", "metric_name".into()),
        ("vcs_repository", "VARCHAR", "vcs_repository".into()),
        ("folder", "VARCHAR", FOLDER_SQL.into()),
    ],
    values: vec![sum("increment", "DOUBLE", "sum(increment)")],
});

const API_OUTCOME: &str = "event_name IN ('api_request', 'api_error', 'api_retries_exhausted')";

/// Model calls, API errors and exhausted retries per status code and model (API error rates).
pub static API_OUTCOMES: LazyLock<Rollup> = LazyLock::new(|| Rollup {
    table: "rollup_api_outcomes",
    source: "events".into(),
    filter: API_OUTCOME.into(),
    keys: vec![
        ("event_name", "VARCHAR", "event_name".into()),
        ("status_code", "BIGINT", "status_code".into()),
        ("model", "VARCHAR", "model".into()),
    ],
    values: vec![sum("n", "BIGINT", "count(*)")],
});

/// Durations of model calls per model (API latency).
pub static API_DURATIONS: LazyLock<Rollup> = LazyLock::new(|| {
    sketch("rollup_api_durations", "events".into(), API_REQUEST.into(), vec![("model", "VARCHAR", "model".into())], "duration_ms")
});

/// Their times to first token (of calls with a duration, as the latency query reads them).
pub static API_TTFT: LazyLock<Rollup> = LazyLock::new(|| {
    sketch(
        "rollup_api_ttft",
        "events".into(),
        format!("{API_REQUEST} AND duration_ms IS NOT NULL"),
        vec![("model", "VARCHAR", "model".into())],
        "ttft_ms",
    )
});

/// Whether an event, written or deleted, changes the summaries of the hours around its own
/// (rollups that look it up from there).
pub fn looked_up(event_name: &str) -> bool {
    event_name == "tool_decision"
}

/// The rollups of schema v5.
fn v5() -> [&'static Rollup; 17] {
    [
        &SESSION_EVENTS,
        &SESSION_METRICS,
        &SESSION_VCS_EVENTS,
        &SESSION_VCS_METRICS,
        &SESSION_DESCRIBED_EVENTS,
        &SESSION_DESCRIBED_METRICS,
        &AGENT_CALLS,
        &AGENT_CALL_DURATIONS,
        &AGENT_RUNS,
        &AGENT_RUN_DURATIONS,
        &HOOK_RUNS,
        &HOOK_DURATIONS,
        &HOOK_SESSIONS,
        &HOOK_REGISTRATIONS,
        &TOOL_RESULTS,
        &TOOL_RESULT_DURATIONS,
        &TOOL_DECISIONS,
    ]
}

/// The rollups schema v6 added.
fn v6() -> [&'static Rollup; 6] {
    [&METRIC_SUMS, &METRIC_TEAMS, &METRIC_SESSION_KEYS, &API_OUTCOMES, &API_DURATIONS, &API_TTFT]
}

/// Every rollup, in the order they are built.
pub fn all() -> Vec<&'static Rollup> {
    v5().into_iter().chain(v6()).collect()
}

impl Rollup {
    fn create_sql(&self) -> String {
        let columns: Vec<String> = std::iter::once("hour TIMESTAMP NOT NULL".to_string())
            .chain(self.keys.iter().map(|(name, ty, _)| format!("{name} {ty}")))
            .chain(self.values.iter().map(|v| format!("{} {}", v.name, v.sql_type)))
            .collect();
        format!("CREATE TABLE {} ({});\n", self.table, columns.join(", "))
    }

    /// The source rows within `[from, to)` (TIMESTAMP expressions; `None`: all of them), as
    /// the FROM item of a summary.
    fn source_within(&self, bounds: Option<(&str, &str)>) -> (String, String) {
        let (range, wide) = match bounds {
            Some((a, b)) => (
                format!("time >= {a} AND time < {b}"),
                format!("time >= {a} - INTERVAL {LOOKUP_HOURS} HOUR AND time < {b} + INTERVAL {LOOKUP_HOURS} HOUR"),
            ),
            None => ("true".to_string(), "true".to_string()),
        };
        (self.source.replace("{wide}", &wide), range)
    }

    fn select(&self, hour: bool, bounds: Option<(&str, &str)>) -> String {
        let keys: Vec<String> = self.keys.iter().map(|(name, _, expr)| format!("{expr} AS {name}")).collect();
        let values: Vec<String> = self.values.iter().map(|v| format!("{} AS {}", v.row, v.name)).collect();
        let (source, range) = self.source_within(bounds);
        format!(
            "SELECT {hour}{keys}, {values} FROM {source} WHERE ({range}) AND ({filter}) GROUP BY ALL",
            hour = if hour { "date_trunc('hour', time) AS hour, " } else { "" },
            keys = keys.join(", "),
            values = values.join(", "),
            filter = self.filter,
        )
    }

    /// The summary of the source rows within `bounds`, one row per hour and key.
    pub fn build_select(&self, bounds: Option<(&str, &str)>) -> String {
        self.select(true, bounds)
    }

    /// The same summary without the hour (rows of a range merged with the rollup's rows).
    pub fn partial_select(&self, bounds: (&str, &str)) -> String {
        self.select(false, Some(bounds))
    }

    /// Key and value columns, as the rollup's table and `partial_select` both give them.
    pub fn columns(&self) -> String {
        self.keys.iter().map(|(n, _, _)| *n).chain(self.values.iter().map(|v| v.name.as_str())).collect::<Vec<_>>().join(", ")
    }

    pub fn merge(&self, name: &str) -> Option<&str> {
        self.values.iter().find(|v| v.name == name).map(|v| v.merge.as_str())
    }
}

fn create_and_fill(rollups: &[&Rollup]) -> String {
    rollups.iter().map(|r| format!("{}INSERT INTO {} {};\n", r.create_sql(), r.table, r.build_select(None))).collect()
}

/// Schema v5: the rollup tables, filled from the rows already stored.
pub fn migration_v5() -> String {
    let mut sql = String::from(
        "CREATE TABLE rollup_dirty (hour TIMESTAMP NOT NULL);\n\
         -- one row every rebuild and retention pass updates, so two of them never run at once\n\
         CREATE TABLE rollup_lock (generation BIGINT NOT NULL);\n\
         INSERT INTO rollup_lock VALUES (0);\n",
    );
    sql.push_str(&create_and_fill(&v5()));
    sql
}

/// Schema v6: rollups for the Overview's stats, breakdowns, cost by model, productivity, API
/// latency and errors, filled from the rows already stored.
pub fn migration_v6() -> String {
    create_and_fill(&v6())
}

/// Adds `hours` (µs) to the dirty hours, inside the caller's transaction.
pub fn mark_dirty(conn: &Connection, hours: impl IntoIterator<Item = Micros>) -> duckdb::Result<()> {
    let mut appender = conn.appender("rollup_dirty")?;
    for h in hours {
        appender.append_row(params![duckdb::types::Value::Timestamp(duckdb::types::TimeUnit::Microsecond, h)])?;
    }
    appender.flush()
}

/// The dirty hours, oldest first.
pub fn dirty_hours(conn: &Connection) -> duckdb::Result<Vec<Micros>> {
    let mut stmt = conn.prepare("SELECT DISTINCT epoch_us(hour) FROM rollup_dirty ORDER BY 1")?;
    let rows = stmt.query_map([], |r| r.get::<_, Micros>(0))?;
    rows.collect()
}

/// Rebuilds the summaries of hours `[from_us, to_us)` (hour-aligned) from the rows and takes
/// them off the dirty list, in one transaction.
pub fn rebuild(conn: &Connection, from_us: Micros, to_us: Micros) -> duckdb::Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute("UPDATE rollup_lock SET generation = generation + 1", [])?;
    let bounds = Some(("make_timestamp($1)", "make_timestamp($2)"));
    for r in all() {
        tx.execute(&format!("DELETE FROM {} WHERE hour >= make_timestamp($1) AND hour < make_timestamp($2)", r.table), [from_us, to_us])?;
        tx.execute(&format!("INSERT INTO {} {}", r.table, r.build_select(bounds)), [from_us, to_us])?;
    }
    tx.execute("DELETE FROM rollup_dirty WHERE hour >= make_timestamp($1) AND hour < make_timestamp($2)", [from_us, to_us])?;
    tx.commit()
}

/// Inside retention's transaction, after it deleted every row older than `cutoff_us`: drops
/// the summaries of the hours now empty and marks the first hour kept dirty.
pub fn after_delete_before(conn: &Connection, cutoff_us: Micros) -> duckdb::Result<()> {
    conn.execute("UPDATE rollup_lock SET generation = generation + 1", [])?;
    let first_kept = hour_of(cutoff_us);
    for r in all() {
        conn.execute(&format!("DELETE FROM {} WHERE hour < make_timestamp($1)", r.table), [first_kept])?;
    }
    conn.execute("DELETE FROM rollup_dirty WHERE hour < make_timestamp($1)", [first_kept])?;
    // the hour cut through, or whose rows looked up rows of the hour before (`LOOKUP_HOURS`)
    mark_dirty(conn, [first_kept])?;
    Ok(())
}
