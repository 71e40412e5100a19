//! The fleet: which Claude Code versions, providers and platforms are in use, and which managed
//! settings each user and host runs with (`managed_settings_resolved`, one per session, Claude
//! Code 2.1.332 and later), so differences between machines show as separate rows.
use super::filters::Table;
use super::sql::Sql;
use super::Runner;

/// One row per Claude Code version, provider (`anthropic.provider`: firstParty, bedrock,
/// vertex, foundry), custom base URL, OS and architecture: users, sessions, cost, last seen.
pub fn fleet_sql(r: &Runner) -> Result<Sql, super::QueryError> {
    let (p, ctes) = if r.rollups() {
        let mut p = super::sql::Params::empty();
        let described = super::sessions::described_rollup_cte(r, &mut p)?;
        let ctes = super::sessions::session_rollup_ctes(r, &mut p)?;
        (p, format!("{described}, {ctes}"))
    } else {
        let mut p = r.params();
        let ctes = row_ctes(r, &mut p)?;
        (p, ctes)
    };
    let text = format!(
        "
WITH {ctes}, per_session AS (
    SELECT session_id,
        coalesce(ev.app_version, m.app_version, d.service_version, '(none)') AS app_version,
        coalesce(d.provider, '(none)') AS provider,
        coalesce(d.custom_base_url, '(none)') AS custom_base_url,
        coalesce(d.os_type, '(none)') AS os_type,
        coalesce(d.host_arch, '(none)') AS host_arch,
        coalesce(ev.user_id, m.user_id) AS user_id,
        -- per-request events when the logs exporter is on, else the metrics
        coalesce(ev.cost_usd, m.cost_usd, 0) AS cost_usd,
        greatest(ev.last_seen, m.last_seen) AS last_seen
    FROM ev FULL OUTER JOIN m USING (session_id) LEFT JOIN described d USING (session_id)
)
SELECT app_version, provider, custom_base_url, os_type, host_arch,
    count(DISTINCT user_id) AS users,
    count(session_id) AS sessions,
    sum(cost_usd) AS cost_usd,
    max(last_seen) AS last_seen
FROM per_session
GROUP BY ALL
ORDER BY last_seen DESC, app_version, provider"
    );
    Ok(p.into_sql(text))
}

/// `ev`, `m` and `described` from the rows.
fn row_ctes(r: &Runner, p: &mut super::sql::Params) -> Result<String, String> {
    let ev_filter = r.filters.clause(Table::Events, p)?;
    let m_filter = r.filters.clause(Table::Metrics, p)?;
    // JSON is parsed only for a few records per session (prompts, session and cost points),
    // which carry the provider and platform as every record does
    Ok(format!(
        "ev AS (
    SELECT session_id, any_value(user_id) AS user_id, any_value(app_version) AS app_version, max(time) AS last_seen,
        sum(cost_usd) FILTER (WHERE event_name = 'api_request') AS cost_usd
    FROM events
    WHERE session_id IS NOT NULL AND time BETWEEN $1 AND $2{ev_filter}
    GROUP BY session_id
), m AS (
    SELECT session_id, any_value(user_id) AS user_id, any_value(app_version) AS app_version, max(time) AS last_seen,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.cost.usage') AS cost_usd
    FROM metric_points
    WHERE session_id IS NOT NULL AND time BETWEEN $1 AND $2{m_filter}
    GROUP BY session_id
), described AS (
    SELECT session_id,
        any_value(provider) AS provider,
        any_value(custom_base_url) AS custom_base_url,
        any_value(json_extract_string(resource, 'os.type')) AS os_type,
        any_value(json_extract_string(resource, 'host.arch')) AS host_arch,
        any_value(json_extract_string(resource, 'service.version')) AS service_version
    FROM (
        SELECT session_id, provider, CAST(custom_base_url AS VARCHAR) AS custom_base_url, resource FROM events
        WHERE event_name = 'user_prompt' AND session_id IS NOT NULL AND time BETWEEN $1 - INTERVAL 1 DAY AND $2 + INTERVAL 1 DAY
        UNION ALL
        SELECT session_id, json_extract_string(attributes, 'anthropic.provider'),
            json_extract_string(attributes, 'anthropic.custom_base_url'), resource FROM metric_points
        WHERE metric_name IN ('claude_code.session.count', 'claude_code.cost.usage') AND session_id IS NOT NULL
            AND time BETWEEN $1 - INTERVAL 1 DAY AND $2 + INTERVAL 1 DAY
    )
    GROUP BY session_id
)"
    ))
}

/// One row per user, host and managed-settings state: the trigger, the source behaviour, the
/// settings sources and the settings helper's state; sessions and last seen. A user whose
/// machines differ has a row per state. The host is `host.name` (with
/// `OTEL_RESOURCE_INCLUDE_HOST`), else "(none)".
pub fn managed_settings_sql(r: &Runner) -> Result<Sql, String> {
    let mut p = r.params();
    let filter = r.filters.clause(Table::Events, &mut p)?;
    let a = |key: &str| format!("coalesce(json_extract_string(attributes, '{key}'), '(none)')");
    let text = format!(
        "
SELECT coalesce(user_email, user_id, '(none)') AS user,
    coalesce(json_extract_string(resource, 'host.name'), '(none)') AS host,
    {trigger} AS trigger,
    {behavior} AS source_behavior,
    coalesce(CAST(json_extract(attributes, 'managed_settings.sources') AS VARCHAR), '(none)') AS sources,
    {state} AS helper_state,
    {applied} AS helper_applied,
    count(DISTINCT session_id) AS sessions,
    max(time) AS last_seen
FROM events
WHERE event_name = 'managed_settings_resolved' AND time BETWEEN $1 AND $2{filter}
GROUP BY ALL
ORDER BY user, host, last_seen DESC",
        trigger = a("managed_settings.trigger"),
        behavior = a("managed_settings.source_behavior"),
        state = a("managed_settings.helper.state"),
        applied = a("managed_settings.helper.applied"),
    );
    Ok(p.into_sql(text))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::ingest::testing::state_with;
    use crate::query::testing::wide;
    use crate::test_fixtures::{run, run_v332};

    #[tokio::test]
    async fn versions_providers_and_managed_settings_in_use() {
        let (state, _dir) = state_with(&[run_v332("multi", "http/protobuf"), run("tools", "grpc")].concat()).await;
        let c = wide(&state, json!({"queryType": "fleet"})).await;
        assert_eq!(c["app_version"], ["2.1.332", "2.1.197"]);
        // 2.1.197 sends no provider
        assert_eq!(c["provider"], ["firstParty", "(none)"]);
        assert_eq!(c["custom_base_url"], ["true", "(none)"]);
        assert_eq!(c["os_type"], ["linux", "linux"]);
        assert_eq!(c["host_arch"], ["amd64", "amd64"]);
        assert_eq!(c["users"], [1, 1]);
        assert_eq!(c["sessions"], [1, 1]);
        assert!((c["cost_usd"][0].as_f64().unwrap() - 0.0304808).abs() < 1e-9);
        assert!((c["cost_usd"][1].as_f64().unwrap() - 0.048449).abs() < 1e-9);

        let c = wide(&state, json!({"queryType": "managed_settings"})).await;
        assert_eq!(c["user"], ["21e4cc8904a4e81e32f5ce19c6095b6191360f2d807f11b88d75552427d51bd0"]);
        assert_eq!(c["host"], ["(none)"]);
        assert_eq!(c["trigger"], ["startup"]);
        assert_eq!(c["source_behavior"], ["first-wins"]);
        assert_eq!(c["sources"], ["[]"]);
        assert_eq!(c["helper_state"], ["none"]);
        assert_eq!(c["helper_applied"], ["none"]);
        assert_eq!(c["sessions"], [1]);
        let c = wide(&state, json!({"queryType": "breakdown", "measure": "cost", "groupBy": "provider", "format": "table"})).await;
        assert_eq!(c["provider"], ["(none)", "firstParty"]);
    }
}
