//! The typed query model: the JSON a panel or alert rule stores, one variant per `queryType`.
//! Every query also accepts the filters of `filters::Filters` and `valueField`.
use serde::Deserialize;

use super::filters::Filters;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "queryType", rename_all = "snake_case")]
pub enum Query {
    Sessions(SessionsQuery),
    SessionTimeline(SessionTimelineQuery),
    CostByModel(CostByModelQuery),
    ToolSuccessRate(NoOptions),
    Stat(StatQuery),
    Breakdown(BreakdownQuery),
    ApiLatency(ApiLatencyQuery),
    ApiErrors(ApiErrorsQuery),
    ToolErrors(NoOptions),
    ToolDecisions(NoOptions),
    ToolCosts(NoOptions),
    Productivity(ProductivityQuery),
    Prompts(LimitOnly),
    Logs(LogsQuery),
    LogsVolume(LogsQuery),
    LogContext(LogContextQuery),
    Live(LiveQuery),
    Trace(TraceQuery),
    Traces(TracesQuery),
    EventCounts(NoOptions),
    Repositories(LimitOnly),
    Agents(NoOptions),
    Hooks(NoOptions),
    Mcp(NoOptions),
    Skills(NoOptions),
    Plugins(NoOptions),
    ManagedSettings(NoOptions),
    Fleet(NoOptions),
    Variable(VariableQuery),
    Annotations(AnnotationsQuery),
    Sql(RawSqlQuery),
    Budget(BudgetQuery),
    UsageWindows(UsageWindowsQuery),
    UsageReport(UsageReportQuery),
}

/// Model calls summed per local day, week or month and/or per group (`gpx_claudecode report`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReportQuery {
    #[serde(default)]
    pub period: ReportPeriod,
    /// Any attribute key (model, user, team, project, repository, branch, session, …).
    #[serde(default)]
    pub group_by: Option<String>,
    /// IANA zone the periods are local to.
    #[serde(default = "utc")]
    pub timezone: String,
    /// A row per model under each row.
    #[serde(default)]
    pub breakdown: bool,
    /// A last row with the totals (period and group empty).
    #[serde(default)]
    pub totals: bool,
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportPeriod {
    #[default]
    Day,
    Week,
    Month,
    /// One row per group for the whole range.
    None,
}

/// Cost against the datasource's budgets in the period that holds the range's end.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetQuery {
    /// `cost` (Claude Code's estimate; list price for imported history) or `list_cost`.
    #[serde(default)]
    pub measure: BudgetMeasure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetMeasure {
    #[default]
    Cost,
    ListCost,
}

/// Claude plans' 5-hour usage windows and weekly totals, per user.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageWindowsQuery {
    /// `windows` (one row per 5-hour window), `weekly` (per user and week) or `limits` (the
    /// plan's own used percentages the statusline recorded, as time series).
    #[serde(default)]
    pub output: WindowsOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowsOutput {
    #[default]
    Windows,
    Weekly,
    Limits,
}

/// A parsed query with the options every type shares.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedQuery {
    pub query: Query,
    pub filters: Filters,
    /// For table results: keep the text columns and only this numeric column, so the frame is a
    /// numeric table that alert rules (server-side expressions) accept.
    pub value_field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct NoOptions {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    TimeSeries,
    Table,
    Logs,
}

impl Format {
    /// For typed queries with a series and a table form: whether to return the series.
    /// `logs` belongs to raw SQL only.
    pub fn is_series(self) -> Result<bool, String> {
        match self {
            Format::TimeSeries => Ok(true),
            Format::Table => Ok(false),
            Format::Logs => Err("format \"logs\" is only for raw SQL; use \"time_series\" or \"table\"".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiErrorsQuery {
    #[serde(default)]
    pub format: Format,
    /// Time series: one error-rate series per status code (default) or one overall series.
    #[serde(default = "yes")]
    pub by_status_code: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitOnly {
    #[serde(default = "default_limit")]
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsQuery {
    /// Most rows returned, newest activity first.
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn default_limit() -> u32 {
    1000
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionTimelineQuery {
    pub session_id: String,
}

/// Where cost and token numbers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `claude_code.*` metrics (model = configured model, e.g. `claude-opus-4-8[1m]`).
    #[default]
    Metrics,
    /// Log events, e.g. `api_request` (per request; model = API model id).
    Events,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CostByModelQuery {
    #[serde(default)]
    pub source: Source,
    #[serde(default)]
    pub format: Format,
}

/// What a stat or breakdown counts or sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Sessions started (`claude_code.session.count`).
    Sessions,
    /// Distinct sessions with any telemetry in the range.
    ActiveSessions,
    Cost,
    /// Cost at list prices (`prices`), per `api_request`: telemetry and imported history alike.
    ListCost,
    /// Cost of model calls made by subagents (query class `subagent`).
    SubagentCost,
    Tokens,
    InputTokens,
    OutputTokens,
    CacheReadTokens,
    CacheCreationTokens,
    /// The split of cache writes by cache lifetime (`api_request`, Claude Code 2.1.332 and
    /// later); 1-hour writes are priced higher than 5-minute ones.
    #[serde(rename = "cache_creation_5m_tokens")]
    CacheCreation5mTokens,
    #[serde(rename = "cache_creation_1h_tokens")]
    CacheCreation1hTokens,
    /// cacheRead ÷ (input + cacheRead + cacheCreation).
    CacheHitRatio,
    /// Seconds (`claude_code.active_time.total`).
    ActiveTime,
    LinesAdded,
    LinesRemoved,
    Commits,
    PullRequests,
    ApiRequests,
    ApiErrors,
    /// api_error ÷ (api_request + api_error).
    ApiErrorRate,
    RetriesExhausted,
    Refusals,
    ToolCalls,
    ToolFailures,
    Prompts,
    /// Prompts sent while Claude Code was still busy with an earlier one (`queued_sends` on
    /// interaction spans).
    QueuedSends,
    Events,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// The range of equal length just before the query's range.
    PreviousPeriod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatOutput {
    All,
    Value,
    Previous,
    Change,
    ChangeRatio,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatQuery {
    pub measure: Measure,
    #[serde(default)]
    pub source: Source,
    #[serde(default)]
    pub compare: Option<Compare>,
    /// Which number(s) to return; one number makes the frame alertable. Default: all.
    #[serde(default)]
    pub output: Option<StatOutput>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakdownQuery {
    pub measure: Measure,
    /// Any attribute or resource attribute key: `model`, `user.id`, `team`, `terminal.type`, …
    #[serde(default = "default_group_by")]
    pub group_by: String,
    #[serde(default)]
    pub source: Source,
    #[serde(default)]
    pub format: Format,
    /// Keep the top N groups by total and fold the rest into "other"; 0 keeps all.
    #[serde(default = "default_top")]
    pub limit: u32,
}

fn default_group_by() -> String {
    "model".into()
}

fn default_top() -> u32 {
    10
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiLatencyQuery {
    #[serde(default)]
    pub group_by: Option<String>,
    #[serde(default)]
    pub format: Format,
    #[serde(default = "default_percentiles")]
    pub percentiles: Vec<u8>,
    /// Which latencies: the call's duration and its time to first token by default.
    #[serde(default = "default_latencies")]
    pub latencies: Vec<Latency>,
    #[serde(default)]
    pub source: LatencySource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Latency {
    /// The whole model call (`duration_ms`).
    Duration,
    /// Time to first token (`ttft_ms`).
    Ttft,
    /// Time to the first content block (`first_content_ms`, llm_request spans of 2.1.332 and later).
    FirstContent,
}

fn default_latencies() -> Vec<Latency> {
    vec![Latency::Duration, Latency::Ttft]
}

/// Where model-call latencies come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencySource {
    /// `api_request` events (every call, also without traces).
    #[default]
    Events,
    /// `claude_code.llm_request` spans (traces enabled).
    Spans,
}

fn default_percentiles() -> Vec<u8> {
    vec![50, 95, 99]
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductivityQuery {
    #[serde(default)]
    pub group_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsQuery {
    /// Event names without the `claude_code.` prefix; empty = all.
    #[serde(default)]
    pub event_names: Vec<String>,
    /// Case-insensitive text searched in prompt, response, error and tool parameters.
    #[serde(default)]
    pub search: Option<String>,
    #[serde(default = "default_limit")]
    pub limit: u32,
}

/// The events around a point of one session (`logs::context`): a time in the session, or a
/// span (its session and start).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogContextQuery {
    #[serde(default)]
    pub session_id: Option<String>,
    /// Epoch milliseconds (fractions to the microsecond), a number or numeric text.
    #[serde(default, deserialize_with = "number_or_text")]
    pub time: Option<f64>,
    /// The event's `event.sequence`, when the point is an event.
    #[serde(default, deserialize_with = "number_or_text")]
    pub sequence: Option<i64>,
    /// Instead of session and time: the span whose session's events around its start to give.
    #[serde(default)]
    pub span_id: Option<String>,
    #[serde(default)]
    pub direction: ContextDirection,
    /// Events on each side.
    #[serde(default = "default_context")]
    pub limit: u32,
}

fn default_context() -> u32 {
    50
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextDirection {
    /// Earlier events, newest first (Grafana's `BACKWARD`).
    #[serde(alias = "BACKWARD", alias = "backward")]
    Before,
    /// Later events, oldest first (Grafana's `FORWARD`).
    #[serde(alias = "FORWARD", alias = "forward")]
    After,
    #[default]
    Around,
}

/// A number sent as a JSON number or as text (Grafana's data links interpolate into strings);
/// empty text and null are none.
fn number_or_text<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + std::str::FromStr,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N<T> {
        Number(T),
        Text(String),
        Null(()),
    }
    match N::<T>::deserialize(d)? {
        N::Number(n) => Ok(Some(n)),
        N::Text(t) if t.trim().is_empty() => Ok(None),
        N::Text(t) => t.trim().parse().map(Some).map_err(|_| serde::de::Error::custom(format!("{t:?} is not a number"))),
        N::Null(()) => Ok(None),
    }
}

/// Events as they arrive (Grafana Live), of one session or of all.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveQuery {
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Interactions (root spans, one per prompt) to search traces by.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TracesQuery {
    /// Only interactions that took at least this long.
    #[serde(default)]
    pub min_duration_ms: Option<f64>,
    /// Only interactions with a failed span (model call, tool) or an API error.
    #[serde(default)]
    pub errors_only: bool,
    /// Only interactions that called this tool.
    #[serde(default)]
    pub tool: Option<String>,
    #[serde(default = "default_traces")]
    pub limit: u32,
}

fn default_traces() -> u32 {
    100
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceQuery {
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The trace of a prompt (`prompt.id`), found through its events.
    #[serde(default)]
    pub prompt_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariableQuery {
    /// `session`, `model`, `user`, `tool`, `event_name`, or any attribute / resource key.
    pub key: String,
    #[serde(default = "default_limit")]
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationKind {
    SessionStart,
    ApiError,
    ToolReject,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnnotationsQuery {
    #[serde(default = "all_annotation_kinds")]
    pub kinds: Vec<AnnotationKind>,
}

fn all_annotation_kinds() -> Vec<AnnotationKind> {
    vec![AnnotationKind::SessionStart, AnnotationKind::ApiError, AnnotationKind::ToolReject]
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawSqlQuery {
    pub raw_sql: String,
    #[serde(default = "table_format")]
    pub format: Format,
}

fn table_format() -> Format {
    Format::Table
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shared {
    #[serde(flatten)]
    filters: Filters,
    #[serde(default)]
    value_field: Option<String>,
}

/// Parses a query's JSON. Grafana sends `queryType` both inside the JSON and beside it; the
/// outer one fills in when the JSON lacks it. Errors name the offending field.
pub fn parse(json: &serde_json::Value, outer_query_type: &str) -> Result<ParsedQuery, String> {
    let mut json = json.clone();
    if let Some(obj) = json.as_object_mut() {
        let missing = obj.get("queryType").and_then(|v| v.as_str()).is_none_or(str::is_empty);
        if missing && !outer_query_type.is_empty() {
            obj.insert("queryType".into(), outer_query_type.into());
        }
    } else {
        return Err("query must be a JSON object".into());
    }
    let query: Query = serde_json::from_value(json.clone()).map_err(|e| format!("invalid query: {e}"))?;
    let shared: Shared = serde_json::from_value(json).map_err(|e| format!("invalid query filters: {e}"))?;
    Ok(ParsedQuery { query, filters: shared.filters, value_field: shared.value_field.filter(|v| !v.is_empty()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(v: serde_json::Value) -> Query {
        parse(&v, "").unwrap().query
    }

    #[test]
    fn query_shapes_and_defaults() {
        assert_eq!(q(json!({"queryType": "sessions", "refId": "A"})), Query::Sessions(SessionsQuery { limit: 1000 }));
        assert_eq!(
            q(json!({"queryType": "session_timeline", "sessionId": "abc"})),
            Query::SessionTimeline(SessionTimelineQuery { session_id: "abc".into() })
        );
        assert_eq!(
            q(json!({"queryType": "cost_by_model"})),
            Query::CostByModel(CostByModelQuery { source: Source::Metrics, format: Format::TimeSeries })
        );
        assert_eq!(parse(&json!({}), "tool_success_rate").unwrap().query, Query::ToolSuccessRate(NoOptions {}));
        assert_eq!(
            q(json!({"queryType": "breakdown", "measure": "cost"})),
            Query::Breakdown(BreakdownQuery {
                measure: Measure::Cost,
                group_by: "model".into(),
                source: Source::Metrics,
                format: Format::TimeSeries,
                limit: 10
            })
        );
        let p = parse(&json!({"queryType": "stat", "measure": "cost", "sessions": ["s"], "valueField": "value"}), "").unwrap();
        assert_eq!(p.filters.sessions, ["s"]);
        assert_eq!(p.value_field.as_deref(), Some("value"));
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse(&json!({"queryType": "session_timeline"}), "").unwrap_err();
        assert!(e.contains("sessionId"), "{e}");
        let e = parse(&json!({"queryType": "nope"}), "").unwrap_err();
        assert!(e.contains("unknown variant `nope`"), "{e}");
        let e = parse(&json!({"refId": "A"}), "").unwrap_err();
        assert!(e.contains("queryType"), "{e}");
        let e = parse(&json!({"queryType": "cost_by_model", "source": "logs"}), "").unwrap_err();
        assert!(e.contains("logs"), "{e}");
        let e = parse(&json!({"queryType": "stat", "measure": "money"}), "").unwrap_err();
        assert!(e.contains("money"), "{e}");
        let e = parse(&json!({"queryType": "stat"}), "").unwrap_err();
        assert!(e.contains("measure"), "{e}");
        let e = parse(&json!({"queryType": "sessions", "sessions": 5}), "").unwrap_err();
        assert!(e.contains("filters"), "{e}");
    }
}
