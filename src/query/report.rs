//! Usage reports: model calls (`api_request`, telemetry and imported history alike) summed per
//! local day, week or month and/or per group, optionally split by model, with a totals row. The
//! terminal's `gpx_claudecode report` runs exactly this query, so its numbers are the panels'.
use super::filters::{key_expr, Table as Source};
use super::model::{ReportPeriod, UsageReportQuery};
use super::{timezone, QueryError, Runner};
use crate::frame::Frame;

/// Column names of the result besides the period, group and model.
pub const COLUMNS: &[&str] = &[
    "models",
    "first_seen",
    "last_seen",
    "sessions",
    "api_requests",
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "total_tokens",
    "cost_usd",
    "list_cost_usd",
];

pub fn usage_report(r: &Runner, q: &UsageReportQuery) -> Result<Vec<Frame>, QueryError> {
    let tz = timezone::parse(&q.timezone)?;
    let group_by = q.group_by.as_deref().map(str::trim).filter(|g| !g.is_empty());
    // a split by model inside rows that already are models says nothing more
    let breakdown = q.breakdown && group_by.map(super::filters::canonical_key) != Some("model");
    let mut p = r.params();
    let list_cost = r.list_cost_row_sql(&mut p)?;
    let mut local = || timezone::local_time_sql("time", tz, r.ctx.from, r.ctx.to, &mut p);
    let period = match q.period {
        ReportPeriod::Day => Some(format!("strftime(date_trunc('day', {}), '%Y-%m-%d')", local())),
        // ISO weeks: the Monday they start on
        ReportPeriod::Week => Some(format!("strftime(date_trunc('week', {}), '%Y-%m-%d')", local())),
        ReportPeriod::Month => Some(format!("strftime(date_trunc('month', {}), '%Y-%m')", local())),
        ReportPeriod::None => None,
    };
    let group = group_by.map(|g| key_expr(Source::Events, g, &mut p)).transpose()?;
    let clause = r.filters.clause(Source::Events, &mut p)?;

    let mut dims: Vec<&str> = Vec::new();
    let mut base_dims = String::new();
    if let Some(period) = &period {
        dims.push("__period");
        base_dims.push_str(&format!(",\n        {period} AS __period"));
    }
    if let Some(group) = &group {
        dims.push("__group");
        base_dims.push_str(&format!(",\n        coalesce(CAST({group} AS VARCHAR), '(none)') AS __group"));
    }
    let dims_list = dims.join(", ");
    let mut sets = vec![format!("({dims_list})")];
    if breakdown {
        sets.push(format!("({})", dims.iter().copied().chain(["model"]).collect::<Vec<_>>().join(", ")));
    }
    let totals = q.totals && !dims.is_empty();
    if totals {
        sets.push("()".into());
    }
    let mut select_dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    if breakdown {
        select_dims.push("model".into());
    }
    let mut helpers = Vec::new();
    if totals {
        helpers.push(format!("GROUPING({dims_list}) AS __total"));
    }
    if breakdown {
        helpers.push("GROUPING(model) AS __whole".into());
    }
    let select_head: String = select_dims.iter().chain(helpers.iter()).map(|c| format!("{c}, ")).collect();
    let group_clause =
        if sets.len() == 1 && dims.is_empty() { String::new() } else { format!("GROUP BY GROUPING SETS ({})", sets.join(", ")) };

    // rows in period order, else by cost; a row's models right under it, by cost
    let mut order = Vec::new();
    if totals {
        order.push("__total".to_string());
    }
    if period.is_some() {
        order.push("__period".into());
    }
    if group.is_some() {
        order.push(if breakdown { "__parent_cost DESC".into() } else { "cost_usd DESC".into() });
        order.push("__group".into());
    }
    if breakdown {
        order.push("__whole DESC".into());
    }
    order.push("cost_usd DESC".into());
    if breakdown {
        order.push("model".into());
    }
    let parent = if breakdown && group.is_some() {
        let partition = if period.is_some() { "__period, __group" } else { "__group" };
        format!(", max(CASE WHEN __whole = 1 THEN cost_usd END) OVER (PARTITION BY {partition}) AS __parent_cost")
    } else {
        String::new()
    };
    let hidden: Vec<&str> = [totals.then_some("__total"), breakdown.then_some("__whole"), (!parent.is_empty()).then_some("__parent_cost")]
        .into_iter()
        .flatten()
        .collect();
    let exclude = if hidden.is_empty() { String::new() } else { format!(" EXCLUDE ({})", hidden.join(", ")) };
    let text = format!(
        "WITH base AS NOT MATERIALIZED (
    SELECT time, session_id, coalesce(model, '(none)') AS model, cost_usd, {list_cost} AS list_cost_usd,
        input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens{base_dims}
    FROM events
    WHERE event_name = 'api_request' AND time BETWEEN $1 AND $2{clause}
), grouped AS (
    SELECT {select_head}string_agg(DISTINCT model, ', ' ORDER BY model) AS models,
        min(time) AS first_seen,
        max(time) AS last_seen,
        count(DISTINCT session_id) AS sessions,
        count(*) AS api_requests,
        coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
        coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
        coalesce(sum(cache_creation_tokens), 0)::BIGINT AS cache_creation_tokens,
        coalesce(sum(cache_read_tokens), 0)::BIGINT AS cache_read_tokens,
        coalesce(sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0) + coalesce(cache_creation_tokens, 0) + coalesce(cache_read_tokens, 0)), 0)::BIGINT AS total_tokens,
        coalesce(sum(cost_usd), 0) AS cost_usd,
        sum(list_cost_usd) AS list_cost_usd
    FROM base
    {group_clause}
)
SELECT *{exclude} FROM (SELECT *{parent} FROM grouped)
ORDER BY {}",
        order.join(", ")
    );
    let sql = p.into_sql(text);
    let mut table = sql.run(r.conn)?;
    table.rename("__period", "period");
    if let Some(g) = group_by {
        table.rename("__group", g);
    }
    let table = r.reduce(table)?;
    Ok(vec![table.into_frame("usage_report", sql.describe(), super::table::Units::ByName)])
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::ingest::testing::state_with;
    use crate::query::testing::{all_close, wide};
    use crate::test_fixtures::{run, run_v332};

    fn texts(v: &[Value]) -> Vec<&str> {
        v.iter().map(|v| v.as_str().unwrap_or("NULL")).collect()
    }

    /// The 2.1.197 tools run (2026-11-21 21:32 UTC) and the 2.1.332 multi run
    /// (2026-12-01 07:09 UTC): local midnight moves them between days, weeks and months.
    #[tokio::test]
    async fn periods_are_local_days_weeks_and_months() {
        let mut fixtures = run("tools", "grpc");
        fixtures.extend(run_v332("multi", "http/protobuf"));
        let (state, _dir) = state_with(&fixtures).await;
        let q = |period: &str, tz: &str| json!({"queryType": "usage_report", "period": period, "timezone": tz});
        let utc = wide(&state, q("day", "UTC")).await;
        assert_eq!(texts(&utc["period"]), ["2026-11-21", "2026-12-01"]);
        assert_eq!(utc["api_requests"], [json!(7), json!(7)]);
        assert!(all_close(&utc["cost_usd"], &[0.048449, 0.0304808]), "{:?}", utc["cost_usd"]);
        // Tokyo is 9 hours ahead: the evening of the 21st is the morning of the 22nd
        assert_eq!(texts(&wide(&state, q("day", "Asia/Tokyo")).await["period"]), ["2026-11-22", "2026-12-01"]);
        // Los Angeles is 8 hours behind: 07:09 UTC on 1 December is 23:09 on 30 November
        assert_eq!(texts(&wide(&state, q("day", "America/Los_Angeles")).await["period"]), ["2026-11-21", "2026-11-30"]);
        assert_eq!(texts(&wide(&state, q("month", "UTC")).await["period"]), ["2026-11", "2026-12"]);
        let la_month = wide(&state, q("month", "America/Los_Angeles")).await;
        assert_eq!(texts(&la_month["period"]), ["2026-11"]);
        assert_eq!(la_month["api_requests"], [json!(14)]);
        assert_eq!(la_month["sessions"], [json!(2)]);
        // ISO weeks start on Monday: 16 November and 30 November
        assert_eq!(texts(&wide(&state, q("week", "Asia/Tokyo")).await["period"]), ["2026-11-16", "2026-11-30"]);
        assert_eq!(texts(&wide(&state, q("week", "America/Los_Angeles")).await["period"]), ["2026-11-16", "2026-11-30"]);
    }

    #[tokio::test]
    async fn groups_split_by_model_with_totals() {
        let mut fixtures = run("tools", "grpc");
        fixtures.extend(run_v332("multi", "http/protobuf"));
        let (state, _dir) = state_with(&fixtures).await;
        let c = wide(
            &state,
            json!({"queryType": "usage_report", "period": "month", "groupBy": "app.version", "breakdown": true, "totals": true}),
        )
        .await;
        let models: Vec<&str> = texts(&c["model"]);
        let versions: Vec<&str> = texts(&c["app.version"]);
        let periods: Vec<&str> = texts(&c["period"]);
        // each month and version, then its models; the totals row last
        assert_eq!(periods.last(), Some(&"NULL"));
        assert_eq!(versions.last(), Some(&"NULL"));
        assert_eq!(models.last(), Some(&"NULL"));
        let rows: usize = c["api_requests"].len();
        let whole: i64 =
            (0..rows).filter(|&i| models[i] == "NULL" && periods[i] != "NULL").map(|i| c["api_requests"][i].as_i64().unwrap()).sum();
        let split: i64 = (0..rows).filter(|&i| models[i] != "NULL").map(|i| c["api_requests"][i].as_i64().unwrap()).sum();
        assert_eq!((whole, split, c["api_requests"][rows - 1].as_i64().unwrap()), (14, 14, 14));
        assert!(all_close(&c["cost_usd"][rows - 1..], &[0.048449 + 0.0304808]));
        // a model row follows the row it splits
        assert_eq!(models[0], "NULL");
        assert_ne!(models[1], "NULL");
    }

    #[tokio::test]
    async fn a_bad_time_zone_names_the_fix() {
        let (state, _dir) = state_with(&run("tools", "grpc")).await;
        let e = crate::query::testing::frames(
            &state,
            json!({"queryType": "usage_report", "timezone": "Europe/Atlantis"}),
            crate::query::testing::ctx(),
        )
        .await
        .unwrap_err();
        assert!(e.contains("IANA") && e.contains("Europe/Berlin"), "{e}");
    }
}
