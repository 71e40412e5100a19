//! Money against limits: budgets from the datasource settings (spent, share used, forecast at
//! the period's end) and Claude plans' 5-hour usage windows with weekly totals.
use std::sync::Arc;

use arrow::array::StringArray;
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde::Deserialize;

use super::filters::{key_expr, Table as Source};
use super::model::{BudgetMeasure, BudgetQuery, UsageWindowsQuery, WindowsOutput};
use super::series::{pivot, Fill, Grid};
use super::sql::Params;
use super::table::{Table, Units};
use super::{series_frame, QueryError, Runner};
use crate::frame::{Field, Frame};

/// Length of a plan's usage window: it opens with the first request after the previous one
/// closed and lasts five hours.
pub const WINDOW: Duration = Duration::hours(5);

/// The metric the statusline records the plan's own used percentages as (`type` = window).
pub const RATE_LIMIT_METRIC: &str = "gpx_claudecode.statusline.rate_limit.used_percentage";

/// One budget of the datasource settings (`jsonData.budgets`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Budget {
    /// Shown as the row's name; defaults to scope and value.
    #[serde(default)]
    pub name: Option<String>,
    pub scope: BudgetScope,
    /// The organisation, team or user it is for (matched against `key`); none = everyone.
    #[serde(default)]
    pub value: Option<String>,
    /// The attribute `value` is matched against; defaults per scope (`organization.id`, `team`,
    /// `user.email`).
    #[serde(default)]
    pub key: Option<String>,
    pub amount_usd: f64,
    #[serde(default)]
    pub period: Period,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    Organization,
    Team,
    User,
}

impl BudgetScope {
    fn name(self) -> &'static str {
        match self {
            BudgetScope::Organization => "organization",
            BudgetScope::Team => "team",
            BudgetScope::User => "user",
        }
    }

    fn default_key(self) -> &'static str {
        match self {
            BudgetScope::Organization => "organization.id",
            BudgetScope::Team => "team",
            BudgetScope::User => "user.email",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    #[default]
    Month,
    Week,
}

impl Period {
    fn name(self) -> &'static str {
        match self {
            Period::Month => "month",
            Period::Week => "week",
        }
    }

    /// The calendar month (UTC) or ISO week (Monday 00:00 UTC) holding `t`.
    pub fn bounds(self, t: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let day = t.date_naive();
        let (start, end) = match self {
            Period::Month => {
                let first = day.with_day(1).unwrap_or(day);
                let next = if first.month() == 12 {
                    first.with_year(first.year() + 1).and_then(|d| d.with_month(1))
                } else {
                    first.with_month(first.month() + 1)
                };
                (first, next.unwrap_or(first + Duration::days(31)))
            }
            Period::Week => {
                let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
                (monday, monday + Duration::days(7))
            }
        };
        let at_midnight = |d: chrono::NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
        (at_midnight(start), at_midnight(end))
    }
}

/// Parses `jsonData.budgets`; a bad entry is an error naming it.
pub fn parse_budgets(value: &serde_json::Value) -> Result<Vec<Budget>, String> {
    let budgets: Vec<Budget> = serde_json::from_value(value.clone()).map_err(|e| format!("budgets setting: {e}"))?;
    for (i, b) in budgets.iter().enumerate() {
        if !b.amount_usd.is_finite() || b.amount_usd <= 0.0 {
            return Err(format!("budgets setting: budget {} needs amountUsd > 0", i + 1));
        }
    }
    Ok(budgets)
}

fn text_field(name: &str, values: Vec<Option<String>>) -> Field {
    Field::new(name, Arc::new(StringArray::from(values))).unwrap_or_else(|_| Field::numbers(name, vec![]))
}

fn ns(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// A budget's name, settings, period and spending so far.
type BudgetRow<'a> = (String, &'a Budget, DateTime<Utc>, DateTime<Utc>, f64);

/// Spent, share used and forecast per budget, in the period holding the range's end (or now, if
/// that is earlier). The forecast extends the period's burn rate so far to its end.
pub fn budget(r: &Runner, q: &BudgetQuery) -> Result<Vec<Frame>, QueryError> {
    let now = r.ctx.to.min(Utc::now());
    let mut rows: Vec<BudgetRow> = Vec::new();
    let mut executed = Vec::new();
    for b in &r.settings.budgets {
        let (start, end) = b.period.bounds(now);
        let mut p = Params::with_range(start, now);
        let cost = match q.measure {
            BudgetMeasure::Cost => "cost_usd".to_string(),
            BudgetMeasure::ListCost => r.list_cost_row_sql(&mut p)?,
        };
        let scope = match &b.value {
            Some(v) => {
                let key = key_expr(Source::Events, b.key.as_deref().unwrap_or(b.scope.default_key()), &mut p)?;
                format!(" AND {key} = {}", p.bind(v.as_str()))
            }
            None => String::new(),
        };
        let filters = r.filters.clause(Source::Events, &mut p)?;
        let sql = p.into_sql(format!(
            "SELECT coalesce(sum({cost}), 0)::DOUBLE AS spent FROM events WHERE event_name = 'api_request' AND time BETWEEN $1 AND $2{scope}{filters}"
        ));
        let spent = sql.run(r.conn)?.fields.first().and_then(|f| f.number(0)).unwrap_or(0.0);
        executed.push(sql.describe());
        let name = b.name.clone().unwrap_or_else(|| match &b.value {
            Some(v) => format!("{} {v}", b.scope.name()),
            None => format!("all {}s", b.scope.name()),
        });
        rows.push((name, b, start, end, spent));
    }
    let elapsed = |start: DateTime<Utc>| (now - start).num_microseconds().unwrap_or(0).max(1) as f64;
    let forecast: Vec<f64> = rows
        .iter()
        .map(|(_, _, start, end, spent)| spent * ((*end - *start).num_microseconds().unwrap_or(0) as f64 / elapsed(*start)))
        .collect();
    let number = |f: &dyn Fn(usize) -> f64| (0..rows.len()).map(|i| Some(f(i))).collect::<Vec<_>>();
    let table = Table {
        fields: vec![
            text_field("budget", rows.iter().map(|r| Some(r.0.clone())).collect()),
            text_field("scope", rows.iter().map(|r| Some(r.1.scope.name().to_string())).collect()),
            text_field("value", rows.iter().map(|r| r.1.value.clone()).collect()),
            text_field("period", rows.iter().map(|r| Some(r.1.period.name().to_string())).collect()),
            Field::times("period_start", rows.iter().map(|r| ns(r.2)).collect()),
            Field::times("period_end", rows.iter().map(|r| ns(r.3)).collect()),
            Field::numbers("spent_usd", number(&|i| rows[i].4)),
            Field::numbers("budget_usd", number(&|i| rows[i].1.amount_usd)),
            Field::numbers("remaining_usd", number(&|i| rows[i].1.amount_usd - rows[i].4)),
            Field::numbers("used_ratio", number(&|i| rows[i].4 / rows[i].1.amount_usd)),
            Field::numbers("forecast_usd", number(&|i| forecast[i])),
            Field::numbers("forecast_ratio", number(&|i| forecast[i] / rows[i].1.amount_usd)),
        ],
        notices: Vec::new(),
    };
    if r.settings.budgets.is_empty() {
        executed.push("-- no budgets are set (jsonData.budgets)".into());
        r.notice("no budgets are set: add them in the datasource settings (Budgets) or its provisioning (jsonData.budgets)".into());
    }
    Ok(vec![r.reduce(table)?.into_frame("budget", executed.join("\n"), Units::ByName)])
}

/// One user's activity in one second: when it started, calls, tokens and cost.
struct Activity {
    user: String,
    first_us: i64,
    last_us: i64,
    calls: i64,
    tokens: i64,
    cost: f64,
}

/// One 5-hour window of one user.
struct Window {
    user: String,
    start_us: i64,
    last_us: i64,
    calls: i64,
    tokens: i64,
    cost: f64,
}

/// The user a plan's usage counts against: the account, else the email, else the user id.
const PLAN_USER: &str = "coalesce(user_email, user_account_uuid, user_id, '(unknown)')";

pub fn usage_windows(r: &Runner, q: &UsageWindowsQuery) -> Result<Vec<Frame>, QueryError> {
    match q.output {
        WindowsOutput::Windows => windows(r),
        WindowsOutput::Weekly => weekly(r),
        WindowsOutput::Limits => limits(r),
    }
}

fn windows(r: &Runner) -> Result<Vec<Frame>, QueryError> {
    // a window that opened up to five hours before the range still reaches into it
    let mut p = Params::with_range(r.ctx.from - WINDOW, r.ctx.to);
    let filters = r.filters.clause(Source::Events, &mut p)?;
    let sql = p.into_sql(format!(
        "SELECT {PLAN_USER} AS user, min(epoch_us(time)) AS first_us, max(epoch_us(time)) AS last_us, count(*) AS calls,
    sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0) + coalesce(cache_read_tokens, 0) + coalesce(cache_creation_tokens, 0))::BIGINT AS tokens,
    coalesce(sum(cost_usd), 0)::DOUBLE AS cost
FROM events
WHERE event_name = 'api_request' AND time BETWEEN $1 AND $2{filters}
GROUP BY 1, epoch_us(time) // 1000000
ORDER BY 1, 2"
    ));
    let t = sql.run(r.conn)?;
    let col = |name: &str| t.column(name).ok_or_else(|| QueryError::Failed(format!("usage windows: no column {name}")));
    let (user, first, last, calls, tokens, cost) =
        (col("user")?, col("first_us")?, col("last_us")?, col("calls")?, col("tokens")?, col("cost")?);
    let activity = (0..t.rows()).map(|i| Activity {
        user: user.text(i).unwrap_or("").to_string(),
        first_us: first.number(i).unwrap_or(0.0) as i64,
        last_us: last.number(i).unwrap_or(0.0) as i64,
        calls: calls.number(i).unwrap_or(0.0) as i64,
        tokens: tokens.number(i).unwrap_or(0.0) as i64,
        cost: cost.number(i).unwrap_or(0.0),
    });
    let window_us = WINDOW.num_microseconds().unwrap_or(i64::MAX);
    let mut out: Vec<Window> = Vec::new();
    for a in activity {
        match out.last_mut() {
            Some(w) if w.user == a.user && a.first_us < w.start_us + window_us => {
                w.last_us = w.last_us.max(a.last_us);
                w.calls += a.calls;
                w.tokens += a.tokens;
                w.cost += a.cost;
            }
            _ => {
                out.push(Window { user: a.user, start_us: a.first_us, last_us: a.last_us, calls: a.calls, tokens: a.tokens, cost: a.cost })
            }
        }
    }
    let from_us = r.ctx.from.timestamp_micros();
    let now_us = r.ctx.to.min(Utc::now()).timestamp_micros();
    out.retain(|w| w.start_us + window_us > from_us);
    out.sort_by(|a, b| b.start_us.cmp(&a.start_us).then(a.user.cmp(&b.user)));
    let open: Vec<bool> = out.iter().map(|w| w.start_us + window_us > now_us).collect();
    let hours = |w: &Window| ((now_us - w.start_us).max(1) as f64) / 3.6e9;
    let burn: Vec<Option<f64>> = out.iter().zip(&open).map(|(w, o)| o.then(|| w.cost / hours(w))).collect();
    let table = Table {
        fields: vec![
            text_field("user", out.iter().map(|w| Some(w.user.clone())).collect()),
            Field::times("window_start", out.iter().map(|w| w.start_us * 1000).collect()),
            Field::times("window_end", out.iter().map(|w| (w.start_us + window_us) * 1000).collect()),
            Field::times("last_activity", out.iter().map(|w| w.last_us * 1000).collect()),
            text_field("state", open.iter().map(|o| Some(if *o { "open" } else { "closed" }.to_string())).collect()),
            Field::numbers("api_calls", out.iter().map(|w| Some(w.calls as f64)).collect()),
            Field::numbers("tokens", out.iter().map(|w| Some(w.tokens as f64)).collect()),
            Field::numbers("cost_usd", out.iter().map(|w| Some(w.cost)).collect()),
            Field::numbers("burn_rate_usd_per_hour", burn.clone()),
            Field::numbers(
                "tokens_per_minute",
                out.iter().zip(&open).map(|(w, o)| o.then(|| w.tokens as f64 / (hours(w) * 60.0))).collect(),
            ),
            Field::numbers("projected_cost_usd", burn.iter().map(|b| b.map(|b| b * WINDOW.num_hours() as f64)).collect()),
            Field::numbers(
                "minutes_left",
                out.iter().zip(&open).map(|(w, o)| o.then(|| ((w.start_us + window_us - now_us) as f64 / 6e7).max(0.0))).collect(),
            ),
        ],
        notices: Vec::new(),
    };
    Ok(vec![r.reduce(table)?.into_frame("usage_windows", sql.describe(), Units::ByName)])
}

fn weekly(r: &Runner) -> Result<Vec<Frame>, QueryError> {
    let mut p = r.params();
    let filters = r.filters.clause(Source::Events, &mut p)?;
    let sql = p.into_sql(format!(
        "SELECT {PLAN_USER} AS user, date_trunc('week', time) AS week,
    count(*) AS api_calls,
    sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0) + coalesce(cache_read_tokens, 0) + coalesce(cache_creation_tokens, 0))::BIGINT AS tokens,
    coalesce(sum(cost_usd), 0)::DOUBLE AS cost_usd,
    count(DISTINCT session_id) AS sessions
FROM events
WHERE event_name = 'api_request' AND time BETWEEN $1 AND $2{filters}
GROUP BY 1, 2
ORDER BY week DESC, user"
    ));
    r.table("usage_weekly", sql)
}

/// The plan's own used percentages as the statusline received them, one series per window.
fn limits(r: &Runner) -> Result<Vec<Frame>, QueryError> {
    let mut p = r.params();
    let metric = p.bind(RATE_LIMIT_METRIC);
    let filters = r.filters.clause(Source::Metrics, &mut p)?;
    let bucket = p.bind(r.ctx.bucket_us());
    let sql = p.into_sql(format!(
        "SELECT make_timestamp((epoch_us(time) // {bucket}) * {bucket}) AS time, coalesce(type, '(none)') AS window, max(value) AS used_percent
FROM metric_points
WHERE metric_name = {metric} AND time BETWEEN $1 AND $2{filters}
GROUP BY ALL ORDER BY 1, 2"
    ));
    let long = sql.run(r.conn)?;
    let grid = Grid::covering(r.ctx.from, r.ctx.to, r.ctx.bucket_us());
    let fields = pivot(&long, grid, Fill::Null, Units::None)?;
    let fields =
        fields.into_iter().map(|f| if f.kind() == crate::frame::Kind::Number { f.with_unit(Some("percent")) } else { f }).collect();
    Ok(vec![series_frame("plan_limits", fields, sql.describe())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_calendar_months_and_iso_weeks() {
        let t = Utc.with_ymd_and_hms(2026, 12, 1, 7, 50, 0).unwrap();
        assert_eq!(
            Period::Month.bounds(t),
            (Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(), Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap())
        );
        // 2026-12-01 is a Tuesday
        assert_eq!(
            Period::Week.bounds(t),
            (Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap(), Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap())
        );
    }

    /// The tools run (Claude Code 2.1.332, 7 calls, $0.0244096) against budgets, and as plan windows.
    #[tokio::test]
    async fn budget_forecast_and_windows_of_the_tools_run() {
        use crate::query::testing::{columns, frames_with};
        use crate::query::{QueryContext, QuerySettings};
        let (state, _dir) = crate::ingest::testing::state_with(&crate::test_fixtures::transcript_run("tools-2.1.332")).await;
        let budgets = parse_budgets(&serde_json::json!([
            {"name": "everyone", "scope": "organization", "amountUsd": 1.0},
            {"scope": "user", "value": "nobody@example.com", "amountUsd": 10.0, "period": "week"}
        ]))
        .unwrap();
        let settings = QuerySettings { budgets, ..QuerySettings::default() };
        // noon on 2026-12-01: half a day of December's 31
        let ctx = QueryContext {
            from: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
            to: Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap(),
            ..crate::query::testing::ctx()
        };
        let f = frames_with(&state, serde_json::json!({"queryType": "budget"}), ctx, settings.clone()).await.unwrap();
        let c = columns(&f[0]);
        assert_eq!(c["budget"], [serde_json::json!("everyone"), serde_json::json!("user nobody@example.com")]);
        let close = |v: &serde_json::Value, e: f64| (v.as_f64().unwrap() - e).abs() < 1e-12;
        assert!(close(&c["spent_usd"][0], 0.0244096) && close(&c["spent_usd"][1], 0.0));
        assert!(close(&c["used_ratio"][0], 0.0244096));
        assert!(close(&c["forecast_usd"][0], 0.0244096 * 62.0), "{:?}", c["forecast_usd"]);
        assert!(close(&c["forecast_ratio"][0], 0.0244096 * 62.0));
        // as an alert rule asks: one number per budget
        let alert = frames_with(&state, serde_json::json!({"queryType": "budget", "valueField": "forecast_ratio"}), ctx, settings.clone())
            .await
            .unwrap();
        assert_eq!(alert[0].fields.iter().filter(|f| f.kind() == crate::frame::Kind::Number).count(), 1);
        let list = frames_with(&state, serde_json::json!({"queryType": "budget", "measure": "list_cost"}), ctx, settings).await.unwrap();
        assert!(close(&columns(&list[0])["spent_usd"][0], 0.0244096), "the run's list cost is Claude Code's cost");

        // one window, opened by the first call; open an hour later, closed the next day
        let t = crate::query::testing::table(
            &state,
            crate::query::sql::Params::empty().into_sql("SELECT min(time) AS t FROM events WHERE event_name = 'api_request'"),
        )
        .await;
        let first_ns = t.fields[0].time_ns(0).unwrap();
        let first = DateTime::from_timestamp_nanos(first_ns);
        let at = |to: DateTime<Utc>| QueryContext { from: first - Duration::hours(1), to, ..crate::query::testing::ctx() };
        let open = frames_with(
            &state,
            serde_json::json!({"queryType": "usage_windows"}),
            at(first + Duration::hours(1)),
            QuerySettings::default(),
        )
        .await
        .unwrap();
        let w = columns(&open[0]);
        assert_eq!(w["window_start"], [serde_json::json!(first_ns / 1000 * 1000)]);
        assert_eq!((w["api_calls"][0].as_f64(), w["tokens"][0].as_f64(), w["state"][0].as_str()), (Some(7.0), Some(45288.0), Some("open")));
        assert!(close(&w["cost_usd"][0], 0.0244096));
        assert!(close(&w["burn_rate_usd_per_hour"][0], 0.0244096), "an hour in: the cost so far per hour");
        assert!(close(&w["projected_cost_usd"][0], 0.0244096 * 5.0));
        assert!(close(&w["minutes_left"][0], 240.0));
        let closed = frames_with(
            &state,
            serde_json::json!({"queryType": "usage_windows"}),
            at(first + Duration::hours(30)),
            QuerySettings::default(),
        )
        .await
        .unwrap();
        let w = columns(&closed[0]);
        assert_eq!((w["state"][0].as_str(), w["burn_rate_usd_per_hour"][0].is_null()), (Some("closed"), true));
        let weekly = frames_with(
            &state,
            serde_json::json!({"queryType": "usage_windows", "output": "weekly"}),
            at(first + Duration::hours(1)),
            QuerySettings::default(),
        )
        .await
        .unwrap();
        let w = columns(&weekly[0]);
        assert_eq!((w["api_calls"][0].as_i64(), w["sessions"][0].as_i64()), (Some(7), Some(1)));
    }

    #[test]
    fn budgets_setting_errors_name_the_problem() {
        let ok =
            parse_budgets(&serde_json::json!([{"scope": "user", "value": "a@example.com", "amountUsd": 100, "period": "week"}])).unwrap();
        assert_eq!(ok[0].period, Period::Week);
        assert!(parse_budgets(&serde_json::json!([{"scope": "user", "amountUsd": 0}])).unwrap_err().contains("amountUsd > 0"));
        assert!(parse_budgets(&serde_json::json!([{"scope": "squad", "amountUsd": 5}])).unwrap_err().contains("squad"));
        assert!(parse_budgets(&serde_json::json!([{"scope": "team", "amount": 5}])).unwrap_err().contains("amount"));
    }
}
