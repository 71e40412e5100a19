//! Measures (what a stat or breakdown sums or counts) and the two query types built on them:
//! `stat` (one number, optionally against the previous period) and `breakdown` (by any
//! attribute, as wide time series or table, top N plus "other").
use chrono::{DateTime, Utc};

use super::filters::{canonical_key, key_expr, Table};
use super::model::{BreakdownQuery, Measure, Source, StatOutput, StatQuery};
use super::rollup;
use super::series::{Fill, Grid};
use super::sql::{Params, Sql};
use super::table::{unit_for, Units};
use super::{QueryError, Runner};
use crate::frame::{Field, Frame, FrameType, Meta, VisType};
use crate::store::rollup::Rollup;

/// How a measure is computed: rows of `table` matching `filter`, aggregated by `agg`.
#[derive(Debug, Clone)]
pub struct MeasureDef {
    pub table: Table,
    pub filter: &'static str,
    pub agg: String,
    /// Ratios are not zero-filled, and not coalesced to 0 when nothing matched.
    pub ratio: bool,
}

fn def(table: Table, filter: &'static str, agg: &str) -> MeasureDef {
    MeasureDef { table, filter, agg: agg.to_string(), ratio: false }
}

/// Stands for the per-row list cost in `Measure::ListCost`, which `Runner::measure` replaces.
const LIST_COST_ROW: &str = "__list_cost_row__";

const COST_METRIC: &str = "metric_name = 'claude_code.cost.usage'";
const TOKEN_METRIC: &str = "metric_name = 'claude_code.token.usage'";
const API_REQUEST: &str = "event_name = 'api_request'";
/// An `api_request` of a subagent (see `filters::query_class_sql`).
const SUBAGENT_REQUEST: &str = "event_name = 'api_request' AND (agent_id IS NOT NULL OR query_source LIKE 'agent:%')";
const SUM_INCREMENT: &str = "sum(increment)";
const EVENT_TOKENS: &str =
    "sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0) + coalesce(cache_read_tokens, 0) + coalesce(cache_creation_tokens, 0))";

impl Measure {
    /// The result column: the measure's name, with its unit where the name alone is ambiguous.
    pub fn column(self) -> &'static str {
        match self {
            Measure::Cost => "cost_usd",
            Measure::ListCost => "list_cost_usd",
            Measure::SubagentCost => "subagent_cost_usd",
            Measure::ActiveTime => "active_time_s",
            other => other.name(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Measure::Sessions => "sessions",
            Measure::ActiveSessions => "active_sessions",
            Measure::Cost => "cost",
            Measure::ListCost => "list_cost",
            Measure::SubagentCost => "subagent_cost",
            Measure::Tokens => "tokens",
            Measure::InputTokens => "input_tokens",
            Measure::OutputTokens => "output_tokens",
            Measure::CacheReadTokens => "cache_read_tokens",
            Measure::CacheCreationTokens => "cache_creation_tokens",
            Measure::CacheCreation5mTokens => "cache_creation_5m_tokens",
            Measure::CacheCreation1hTokens => "cache_creation_1h_tokens",
            Measure::CacheHitRatio => "cache_hit_ratio",
            Measure::ActiveTime => "active_time",
            Measure::LinesAdded => "lines_added",
            Measure::LinesRemoved => "lines_removed",
            Measure::Commits => "commits",
            Measure::PullRequests => "pull_requests",
            Measure::ApiRequests => "api_requests",
            Measure::ApiErrors => "api_errors",
            Measure::ApiErrorRate => "api_error_rate",
            Measure::RetriesExhausted => "retries_exhausted",
            Measure::Refusals => "refusals",
            Measure::ToolCalls => "tool_calls",
            Measure::ToolFailures => "tool_failures",
            Measure::Prompts => "prompts",
            Measure::QueuedSends => "queued_sends",
            Measure::Events => "events",
        }
    }

    /// The SQL of the measure. `source` picks metrics or events where both carry it; measures
    /// only one of them carries ignore it.
    pub fn def(self, source: Source) -> MeasureDef {
        use Measure::*;
        use Table::{Events as E, Metrics as M};
        let events = source == Source::Events;
        match self {
            Sessions if events => def(E, "session_id IS NOT NULL", "count(DISTINCT session_id)"),
            Sessions => def(M, "metric_name = 'claude_code.session.count'", SUM_INCREMENT),
            ActiveSessions => def(if events { E } else { M }, "session_id IS NOT NULL", "count(DISTINCT session_id)"),
            Cost if events => def(E, API_REQUEST, "sum(cost_usd)"),
            Cost => def(M, COST_METRIC, SUM_INCREMENT),
            // per request: the long-context tier and cache lifetimes need each call's tokens
            ListCost => def(E, API_REQUEST, &format!("sum({LIST_COST_ROW})")),
            SubagentCost if events => def(E, SUBAGENT_REQUEST, "sum(cost_usd)"),
            SubagentCost => def(M, "metric_name = 'claude_code.cost.usage' AND query_source = 'subagent'", SUM_INCREMENT),
            Tokens if events => def(E, API_REQUEST, EVENT_TOKENS),
            Tokens => def(M, TOKEN_METRIC, SUM_INCREMENT),
            InputTokens if events => def(E, API_REQUEST, "sum(input_tokens)"),
            InputTokens => def(M, "metric_name = 'claude_code.token.usage' AND type = 'input'", SUM_INCREMENT),
            OutputTokens if events => def(E, API_REQUEST, "sum(output_tokens)"),
            OutputTokens => def(M, "metric_name = 'claude_code.token.usage' AND type = 'output'", SUM_INCREMENT),
            CacheReadTokens if events => def(E, API_REQUEST, "sum(cache_read_tokens)"),
            CacheReadTokens => def(M, "metric_name = 'claude_code.token.usage' AND type = 'cacheRead'", SUM_INCREMENT),
            CacheCreationTokens if events => def(E, API_REQUEST, "sum(cache_creation_tokens)"),
            CacheCreationTokens => def(M, "metric_name = 'claude_code.token.usage' AND type = 'cacheCreation'", SUM_INCREMENT),
            CacheCreation5mTokens => def(E, API_REQUEST, "sum(cache_creation_5m_tokens)"),
            CacheCreation1hTokens => def(E, API_REQUEST, "sum(cache_creation_1h_tokens)"),
            CacheHitRatio if events => MeasureDef {
                ratio: true,
                ..def(
                    E,
                    API_REQUEST,
                    "sum(cache_read_tokens) / nullif(sum(coalesce(input_tokens, 0) + coalesce(cache_read_tokens, 0) + coalesce(cache_creation_tokens, 0)), 0)",
                )
            },
            CacheHitRatio => MeasureDef {
                ratio: true,
                ..def(
                    M,
                    "metric_name = 'claude_code.token.usage' AND type IN ('input', 'cacheRead', 'cacheCreation')",
                    "sum(increment) FILTER (WHERE type = 'cacheRead') / nullif(sum(increment), 0)",
                )
            },
            ActiveTime => def(M, "metric_name = 'claude_code.active_time.total'", SUM_INCREMENT),
            LinesAdded => def(M, "metric_name = 'claude_code.lines_of_code.count' AND type = 'added'", SUM_INCREMENT),
            LinesRemoved => def(M, "metric_name = 'claude_code.lines_of_code.count' AND type = 'removed'", SUM_INCREMENT),
            Commits => def(M, "metric_name = 'claude_code.commit.count'", SUM_INCREMENT),
            PullRequests => def(M, "metric_name = 'claude_code.pull_request.count'", SUM_INCREMENT),
            ApiRequests => def(E, API_REQUEST, "count(*)"),
            ApiErrors => def(E, "event_name = 'api_error'", "count(*)"),
            ApiErrorRate => MeasureDef {
                ratio: true,
                ..def(
                    E,
                    "event_name IN ('api_request', 'api_error')",
                    "(count(*) FILTER (WHERE event_name = 'api_error'))::DOUBLE / nullif(count(*), 0)",
                )
            },
            RetriesExhausted => def(E, "event_name = 'api_retries_exhausted'", "count(*)"),
            Refusals => def(E, "event_name = 'api_refusal'", "count(*)"),
            ToolCalls => def(E, "event_name = 'tool_result'", "count(*)"),
            ToolFailures => def(E, "event_name = 'tool_result' AND success = false", "count(*)"),
            Prompts => def(E, "prompt_id IS NOT NULL", "count(DISTINCT prompt_id)"),
            QueuedSends => def(Table::Spans, "name = 'claude_code.interaction'", "sum(queued_sends)"),
            Events => def(E, "true", "count(*)"),
        }
    }
}

impl Runner<'_> {
    /// A measure's SQL, with the prices in effect for `list_cost`.
    pub fn measure(&self, measure: Measure, source: Source, p: &mut super::sql::Params) -> Result<MeasureDef, QueryError> {
        let mut m = measure.def(source);
        if m.agg.contains(LIST_COST_ROW) {
            m.agg = m.agg.replace(LIST_COST_ROW, &self.list_cost_row_sql(p)?);
        }
        Ok(m)
    }
}

impl MeasureDef {
    fn value_sql(&self) -> String {
        if self.ratio {
            self.agg.clone()
        } else {
            format!("coalesce({}, 0)", self.agg)
        }
    }
}

/// A rollup that holds what a measure and its group read, under the names of the measure's
/// table, so the measure's own SQL runs over it unchanged (`store::rollup::METRIC_SUMS`).
#[derive(Debug, Clone, Copy)]
enum Standing {
    /// The rollup's rows; the group is its key column.
    Rollup(&'static Rollup, Option<&'static str>),
    /// Cost and token points per session, each under the repository (or project) it counts
    /// under: its own, else its session's latest.
    SessionKeys { project: bool },
}

/// What can stand in for the rows of `m` (measure `measure`) grouped by `group_by` in an
/// unfiltered query; `None`: only the rows can answer.
fn standing_in(measure: Measure, m: &MeasureDef, group_by: Option<&str>) -> Option<Standing> {
    use crate::store::rollup::{SESSION_EVENTS, SESSION_METRICS};
    let key = group_by.map(canonical_key);
    if measure == Measure::ActiveSessions {
        let sessions = match m.table {
            Table::Metrics => &*SESSION_METRICS,
            Table::Events => &*SESSION_EVENTS,
            Table::Spans => return None,
        };
        return key.is_none().then_some(Standing::Rollup(sessions, None));
    }
    // metric measures sum `increment` over points picked by metric name, type and query source
    if m.table != Table::Metrics || !m.agg.contains("increment") || m.agg.contains("DISTINCT") {
        return None;
    }
    metric_standing(key, matches!(measure, Measure::Cost | Measure::Tokens))
}

/// What can stand in for metric points summed (`sum(increment)`, picked by metric name, type
/// and query source) per `key`. `cost_or_tokens`: only cost and token points are summed.
fn metric_standing(key: Option<&str>, cost_or_tokens: bool) -> Option<Standing> {
    use crate::store::rollup::{METRIC_SUMS, METRIC_TEAMS};
    let sums = |column| Some(Standing::Rollup(&METRIC_SUMS, column));
    match key {
        None => sums(None),
        Some("model") => sums(Some("model")),
        Some("type") => sums(Some("type")),
        Some("query_class" | "query_source") => sums(Some("query_source")),
        Some("metric.name" | "metric_name") => sums(Some("metric_name")),
        Some("team") => Some(Standing::Rollup(&METRIC_TEAMS, Some("team"))),
        Some(k @ ("vcs.repository.name" | "project")) if cost_or_tokens => Some(Standing::SessionKeys { project: k == "project" }),
        _ => None,
    }
}

/// Metric points to sum (`sum(increment) FILTER …`) per `group_by`, for SQL of the form
/// `SELECT … FROM {from} WHERE … AND {conditions}` with `params`: the table over the range with
/// the query's filters, or, unfiltered, a rollup standing in for it. `group` is the group's
/// expression there.
pub struct MetricSums {
    pub params: Params,
    pub from: String,
    pub conditions: String,
    pub group: Option<String>,
}

impl MetricSums {
    pub fn read(r: &Runner, group_by: Option<&str>) -> Result<MetricSums, QueryError> {
        if let Some(standing) = metric_standing(group_by.map(canonical_key), false).filter(|_| r.rollups()) {
            let mut params = Params::empty();
            let span = (r.ctx.from.timestamp_micros(), r.ctx.to.timestamp_micros());
            let (from, group) = standing.from_sql(r, Table::Metrics, span, false, &mut params)?;
            return Ok(MetricSums { params, from, conditions: "true".into(), group });
        }
        let mut params = r.params();
        let group = group_by.map(|key| key_expr(Table::Metrics, key, &mut params)).transpose()?;
        let filter = r.filters.clause(Table::Metrics, &mut params)?;
        Ok(MetricSums { params, from: "metric_points".into(), conditions: format!("time BETWEEN $1 AND $2{filter}"), group })
    }
}

impl Standing {
    /// The FROM item over `[from_us, to_us]` (named as the measure's table) and the group column.
    /// `hourly`: each row keeps its hour as `time`, for buckets of whole hours.
    fn from_sql(
        self,
        r: &Runner,
        table: Table,
        (from_us, to_us): (i64, i64),
        hourly: bool,
        p: &mut Params,
    ) -> Result<(String, Option<String>), QueryError> {
        let cov = rollup::coverage_of(r, from_us, to_us)?;
        let parts = |rollup: &Rollup, p: &mut Params| {
            if hourly {
                rollup::hourly_parts_sql(rollup, &cov, p)
            } else {
                rollup::parts_sql(rollup, &cov, p)
            }
        };
        Ok(match self {
            Standing::Rollup(rollup, group) => (format!("({}) {}", parts(rollup, p), table.name()), group.map(str::to_string)),
            Standing::SessionKeys { project } => {
                let vcs = super::sessions::vcs_rollup_cte(r, p)?;
                let parts = parts(&crate::store::rollup::METRIC_SESSION_KEYS, p);
                let repository = "coalesce(k.vcs_repository, vcs.repository)";
                let key = if project { format!("coalesce({repository}, k.folder)") } else { repository.to_string() };
                (
                    format!("(WITH {vcs} SELECT k.*, {key} AS __key FROM ({parts}) k LEFT JOIN vcs USING (session_id)) {}", table.name()),
                    Some("__key".to_string()),
                )
            }
        })
    }
}

/// The SQL of a stat's number over `[from, to]`.
fn stat_sql(r: &Runner, q: &StatQuery, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Sql, QueryError> {
    let m = q.measure.def(q.source);
    if let Some(standing) = standing_in(q.measure, &m, None).filter(|_| r.rollups()) {
        let mut p = Params::empty();
        let (from, _) = standing.from_sql(r, m.table, (from.timestamp_micros(), to.timestamp_micros()), false, &mut p)?;
        return Ok(p.into_sql(format!("SELECT {value} AS value FROM {from} WHERE ({filter})", value = m.value_sql(), filter = m.filter)));
    }
    let mut p = Params::with_range(from, to);
    let m = r.measure(q.measure, q.source, &mut p)?;
    let clause = r.filters.clause(m.table, &mut p)?;
    let text = format!(
        "SELECT {value} AS value FROM {table} WHERE {time} BETWEEN $1 AND $2 AND ({filter}){clause}",
        value = m.value_sql(),
        table = m.table.name(),
        time = m.table.time_column(),
        filter = m.filter,
    );
    Ok(p.into_sql(text))
}

/// One row of numbers (`numeric-wide`): `value`, and with a comparison `previous`, `change` and
/// `change_ratio`; each with the measure's unit (the ratio as a percentage).
pub fn stat(r: &Runner, q: &StatQuery) -> Result<Vec<Frame>, QueryError> {
    let keep = match q.output {
        None | Some(StatOutput::All) => None,
        Some(StatOutput::Value) => Some("value"),
        Some(StatOutput::Previous) => Some("previous"),
        Some(StatOutput::Change) => Some("change"),
        Some(StatOutput::ChangeRatio) => Some("change_ratio"),
    };
    if let Some(keep) = keep.filter(|k| *k != "value" && q.compare.is_none()) {
        return Err(format!("output {keep:?} needs \"compare\": \"previous_period\"").into());
    }
    let sql = stat_sql(r, q, r.ctx.from, r.ctx.to)?;
    let value = single_number(&sql.run(r.conn)?);
    let mut fields: Vec<(String, Option<f64>)> = vec![("value".into(), value)];
    let mut described = sql.describe();
    if q.compare.is_some() {
        let span = r.ctx.to - r.ctx.from;
        let prev = stat_sql(r, q, r.ctx.from - span, r.ctx.from - chrono::Duration::microseconds(1))?;
        let previous = single_number(&prev.run(r.conn)?);
        let change = value.zip(previous).map(|(v, p)| v - p);
        let ratio = change.zip(previous).and_then(|(c, p)| (p != 0.0).then(|| c / p));
        fields.push(("previous".into(), previous));
        fields.push(("change".into(), change));
        fields.push(("change_ratio".into(), ratio));
        described.push_str(&format!("\n-- previous period: {}", prev.describe()));
    }
    if let Some(keep) = keep {
        fields.retain(|(n, _)| n == keep);
    }
    let unit = unit_for(q.measure.column());
    let out: Vec<Field> = fields
        .into_iter()
        .map(|(name, v)| {
            let unit = if name == "change_ratio" { unit_for(&name) } else { unit };
            Field::numbers(name, vec![v]).with_unit(Some(unit))
        })
        .collect();
    let mut meta = Meta::new(Some(FrameType::NumericWide), Some(VisType::Table), Some(described));
    meta.custom = Some(serde_json::json!({"measure": q.measure.name()}));
    Ok(vec![Frame::new(q.measure.name(), meta, out)])
}

fn single_number(t: &super::table::Table) -> Option<f64> {
    t.fields.first().and_then(|c| c.number(0))
}

pub fn breakdown(r: &Runner, q: &BreakdownQuery) -> Result<Vec<Frame>, QueryError> {
    let series = q.format.is_series()?;
    let def = q.measure.def(q.source);
    let standing =
        standing_in(q.measure, &def, Some(&q.group_by)).filter(|_| r.rollups() && (!series || rollup::whole_hours(r.ctx.bucket_us())));
    // the FROM item, the group, and the conditions on its rows (range and filters)
    let (mut p, m, from, group, conditions) = match standing {
        Some(standing) => {
            let mut p = Params::empty();
            let span = (r.ctx.from.timestamp_micros(), r.ctx.to.timestamp_micros());
            let (from, group) = standing.from_sql(r, def.table, span, series, &mut p)?;
            let group = group.ok_or_else(|| QueryError::Failed(format!("no rollup column for {:?}", q.group_by)))?;
            let conditions = format!("({})", def.filter);
            (p, def, from, group, conditions)
        }
        None => {
            let mut p = r.params();
            let m = r.measure(q.measure, q.source, &mut p)?;
            let group = key_expr(m.table, &q.group_by, &mut p)?;
            let clause = r.filters.clause(m.table, &mut p)?;
            let conditions = format!("{} BETWEEN $1 AND $2 AND ({}){clause}", m.table.time_column(), m.filter);
            (p, m.clone(), m.table.name().to_string(), group, conditions)
        }
    };
    let bucket = if series { Some(p.bind(r.ctx.bucket_us())) } else { None };
    let (top_cte, group_out) = if q.limit > 0 {
        let n = p.bind(i64::from(q.limit));
        (
            format!(", top AS (SELECT __group FROM base GROUP BY __group ORDER BY {agg} DESC NULLS LAST, __group LIMIT {n})", agg = m.agg),
            "CASE WHEN __group IN (SELECT __group FROM top) THEN __group ELSE 'other' END".to_string(),
        )
    } else {
        (String::new(), "__group".to_string())
    };
    let time_out = bucket.as_ref().map(|b| format!("make_timestamp((epoch_us(time) // {b}) * {b}) AS time, ")).unwrap_or_default();
    let order = if series { "time, __group" } else { "value DESC NULLS LAST, __group" };
    let text = format!(
        // NOT MATERIALIZED: inlined into both uses, so each scan reads only the columns it needs
        "WITH base AS NOT MATERIALIZED (
    SELECT *, coalesce({group}, '(none)') AS __group
    FROM {from}
    WHERE {conditions}
){top_cte}
SELECT {time_out}{group_out} AS __group, {value} AS value
FROM base
GROUP BY ALL
ORDER BY {order}",
        value = m.value_sql(),
    );
    let sql = p.into_sql(text);
    let mut long = sql.run(r.conn)?;
    long.rename("__group", &q.group_by);
    long.rename("value", q.measure.column());
    let name = format!("{}_by_{}", q.measure.name(), q.group_by);
    if series {
        let fill = if m.ratio { Fill::Null } else { Fill::Value(0.0) };
        let grid = Grid::covering(r.ctx.from, r.ctx.to, r.ctx.bucket_us());
        let fields = super::series::pivot(&long, grid, fill, Units::ByName)?;
        Ok(vec![super::series_frame(&name, fields, sql.describe())])
    } else {
        Ok(vec![r.reduce(long)?.into_frame(&name, sql.describe(), Units::ByName)])
    }
}
