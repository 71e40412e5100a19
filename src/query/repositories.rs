//! Repositories and branches: what each one cost and produced. Claude Code 2.1.332 and later
//! put the repository (`vcs.repository.*`, `vcs.owner.name`, with
//! `OTEL_METRICS_INCLUDE_REPOSITORY=1`) on nearly every record, and the branch and commit
//! (`vcs.ref.head.*`) on the tool results of git commands. Both belong to the session: its
//! records are counted under the repository and branch the session last reported.
use super::filters::Table;
use super::model::LimitOnly;
use super::sql::Sql;
use super::Runner;

/// Per session, the last value of each repository key it sent (from a day around the range,
/// so a branch named before the range still counts). Read from the records that carry them,
/// so a query does not read every event: metric points and prompts carry the repository, tool
/// results of git commands the branch and commit (typed columns since schema v4).
pub const SESSION_VCS_CTE: &str = "
vcs_records AS (
    SELECT session_id, time, vcs_repository, vcs_owner, vcs_repository_url, vcs_branch, vcs_commit FROM events
    WHERE event_name IN ('user_prompt', 'tool_result') AND session_id IS NOT NULL
        AND time BETWEEN $1 - INTERVAL 1 DAY AND $2 + INTERVAL 1 DAY
        AND coalesce(vcs_repository, vcs_owner, vcs_repository_url, vcs_branch, vcs_commit) IS NOT NULL
    UNION ALL
    SELECT session_id, time, vcs_repository, vcs_owner, vcs_repository_url, vcs_branch, vcs_commit FROM metric_points
    WHERE session_id IS NOT NULL
        AND time BETWEEN $1 - INTERVAL 1 DAY AND $2 + INTERVAL 1 DAY
        AND coalesce(vcs_repository, vcs_owner, vcs_repository_url, vcs_branch, vcs_commit) IS NOT NULL
), vcs AS (
    SELECT session_id,
        arg_max(vcs_repository, time) FILTER (WHERE vcs_repository IS NOT NULL) AS repository,
        arg_max(vcs_owner, time) FILTER (WHERE vcs_owner IS NOT NULL) AS owner,
        arg_max(vcs_repository_url, time) FILTER (WHERE vcs_repository_url IS NOT NULL) AS repository_url,
        arg_max(vcs_branch, time) FILTER (WHERE vcs_branch IS NOT NULL) AS branch,
        arg_max(vcs_commit, time) FILTER (WHERE vcs_commit IS NOT NULL) AS commit_sha
    FROM vcs_records
    GROUP BY session_id
)";

/// One row per repository and branch: sessions, users, cost, tokens, API calls, commits, pull
/// requests and lines; the latest commit seen on the branch. Sessions without repository
/// attributes are one row of "(none)".
pub fn repositories_sql(r: &Runner, q: &LimitOnly) -> Result<Sql, super::QueryError> {
    let (mut p, ctes) = if r.rollups() {
        let mut p = super::sql::Params::empty();
        let vcs = super::sessions::vcs_rollup_cte(r, &mut p)?;
        let ctes = super::sessions::session_rollup_ctes(r, &mut p)?;
        (p, format!("{vcs}, {ctes}"))
    } else {
        let mut p = r.params();
        let ctes = row_ctes(r, &mut p)?;
        (p, ctes)
    };
    let limit = p.bind(i64::from(q.limit));
    let text = format!(
        "
WITH {ctes}, s AS (
    SELECT session_id,
        coalesce(ev.user_id, m.user_id) AS user_id,
        greatest(ev.last_seen, m.last_seen) AS last_seen,
        coalesce(ev.api_calls, 0) AS api_calls,
        -- per-request events when the logs exporter is on, else the metrics (as in sessions)
        coalesce(ev.cost_usd, m.cost_usd, 0)::DOUBLE AS cost_usd,
        coalesce(ev.tokens, m.tokens, 0) AS tokens,
        coalesce(m.commits, 0) AS commits,
        coalesce(m.pull_requests, 0) AS pull_requests,
        coalesce(m.lines_added, 0) AS lines_added,
        coalesce(m.lines_removed, 0) AS lines_removed
    FROM ev FULL OUTER JOIN m USING (session_id)
)
SELECT coalesce(vcs.repository, '(none)') AS repository,
    coalesce(vcs.owner, '(none)') AS owner,
    coalesce(vcs.branch, '(none)') AS branch,
    arg_max(vcs.commit_sha, s.last_seen) AS commit_sha,
    any_value(vcs.repository_url) AS repository_url,
    count(*) AS sessions,
    count(DISTINCT s.user_id) AS users,
    sum(s.cost_usd) AS cost_usd,
    round(sum(s.tokens))::BIGINT AS tokens,
    sum(s.api_calls)::BIGINT AS api_calls,
    round(sum(s.commits))::BIGINT AS commits,
    round(sum(s.pull_requests))::BIGINT AS pull_requests,
    round(sum(s.lines_added))::BIGINT AS lines_added,
    round(sum(s.lines_removed))::BIGINT AS lines_removed,
    max(s.last_seen) AS last_seen
FROM s LEFT JOIN vcs USING (session_id)
GROUP BY 1, 2, 3
ORDER BY cost_usd DESC, repository, owner, branch
LIMIT {limit}"
    );
    Ok(p.into_sql(text))
}

/// `vcs`, `ev` and `m` from the rows.
fn row_ctes(r: &Runner, p: &mut super::sql::Params) -> Result<String, String> {
    let ev_filter = r.filters.clause(Table::Events, p)?;
    let m_filter = r.filters.clause(Table::Metrics, p)?;
    Ok(format!(
        "{SESSION_VCS_CTE}, ev AS (
    SELECT session_id,
        any_value(user_id) AS user_id,
        max(time) AS last_seen,
        count(*) FILTER (WHERE event_name = 'api_request') AS api_calls,
        sum(cost_usd) FILTER (WHERE event_name = 'api_request') AS cost_usd,
        sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0) + coalesce(cache_read_tokens, 0) + coalesce(cache_creation_tokens, 0))
            FILTER (WHERE event_name = 'api_request') AS tokens
    FROM events
    WHERE time BETWEEN $1 AND $2 AND session_id IS NOT NULL{ev_filter}
    GROUP BY session_id
), m AS (
    SELECT session_id,
        any_value(user_id) AS user_id,
        max(time) AS last_seen,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.cost.usage') AS cost_usd,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.token.usage') AS tokens,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.commit.count') AS commits,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.pull_request.count') AS pull_requests,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.lines_of_code.count' AND type = 'added') AS lines_added,
        sum(increment) FILTER (WHERE metric_name = 'claude_code.lines_of_code.count' AND type = 'removed') AS lines_removed
    FROM metric_points
    WHERE time BETWEEN $1 AND $2 AND session_id IS NOT NULL{m_filter}
    GROUP BY session_id
)"
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::ingest::testing::state_with;
    use crate::query::testing::{all_close, wide};
    use crate::test_fixtures::{run, transcript_run};

    /// `tools-repo-2.1.332` (repository `acme/widgets`, branch `master` from its git commit)
    /// beside 2.1.197's `tools` run, which sends no repository attributes.
    #[tokio::test]
    async fn cost_commits_and_lines_per_repository_and_branch() {
        let (state, _dir) = state_with(&[transcript_run("tools-repo-2.1.332"), run("tools", "grpc")].concat()).await;
        let c = wide(&state, json!({"queryType": "repositories"})).await;
        assert_eq!(c["repository"], ["(none)", "widgets"]);
        assert_eq!(c["owner"], ["(none)", "acme"]);
        assert_eq!(c["branch"], ["(none)", "master"]);
        assert_eq!(c["commit_sha"], [Value::Null, json!("aa10ccb1124ea6694bac095164662ae39db5a6a7")]);
        assert_eq!(c["repository_url"], [Value::Null, json!("https://git.example.test/acme/widgets")]);
        assert!(all_close(&c["cost_usd"], &[0.048449, 0.0244096]), "{:?}", c["cost_usd"]);
        assert_eq!(c["tokens"], [39365, 182 + 306 + 43008 + 1792]);
        for (column, values) in [("sessions", [1, 1]), ("api_calls", [7, 7]), ("commits", [1, 1]), ("pull_requests", [1, 1])] {
            assert_eq!(c[column], values, "{column}");
        }
        assert_eq!(c["lines_added"], [7, 7]);
        assert_eq!(c["lines_removed"], [1, 1]);

        // a metric carries no branch: it counts under its session's
        for (measure, source, group, expected) in [
            ("cost", "metrics", "repository", [("(none)", 0.048449), ("widgets", 0.0244096)]),
            ("cost", "events", "branch", [("(none)", 0.048449), ("master", 0.0244096)]),
            ("commits", "metrics", "branch", [("(none)", 1.0), ("master", 1.0)]),
            ("lines_added", "metrics", "vcs.owner.name", [("(none)", 7.0), ("acme", 7.0)]),
        ] {
            let q = json!({"queryType": "breakdown", "measure": measure, "source": source, "groupBy": group, "format": "table"});
            let c = wide(&state, q).await;
            let mut rows: Vec<(String, f64)> = c[group]
                .iter()
                .zip(c.values().find(|v| v[0].is_number()).unwrap())
                .map(|(g, v)| (g.as_str().unwrap().to_string(), v.as_f64().unwrap()))
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            let expected: Vec<(String, f64)> = expected.iter().map(|(g, v)| (g.to_string(), *v)).collect();
            assert!(rows.iter().zip(&expected).all(|(a, b)| a.0 == b.0 && (a.1 - b.1).abs() < 1e-9), "{measure} by {group}: {rows:?}");
        }

        // filtering by repository or branch keeps that session's records, also the metrics'
        for key in ["repository", "branch", "vcs.ref.head.revision"] {
            let value = if key == "repository" {
                "widgets"
            } else if key == "branch" {
                "master"
            } else {
                "aa10ccb1124ea6694bac095164662ae39db5a6a7"
            };
            for source in ["metrics", "events"] {
                let q = json!({"queryType": "stat", "measure": "cost", "source": source,
                    "adhocFilters": [{"key": key, "operator": "=", "value": value}]});
                assert!(all_close(&wide(&state, q).await["value"], &[0.0244096]), "{key} {source}");
            }
        }
        let c = wide(&state, json!({"queryType": "sessions"})).await;
        assert_eq!(c["repository"], [json!("widgets"), Value::Null]);
        assert_eq!(c["branch"], [json!("master"), Value::Null]);
        let c = wide(&state, json!({"queryType": "variable", "key": "branch"})).await;
        assert_eq!(c["value"], ["master"]);
    }

    #[tokio::test]
    async fn without_repository_attributes_everything_is_none() {
        let (state, _dir) = state_with(&run("tools", "grpc")).await;
        let c = wide(&state, json!({"queryType": "repositories"})).await;
        assert_eq!(c["repository"], ["(none)"]);
        assert_eq!(c["branch"], ["(none)"]);
        assert_eq!(c["sessions"], [1]);
        let q = json!({"queryType": "stat", "measure": "cost", "adhocFilters": [{"key": "branch", "operator": "=", "value": "main"}]});
        assert_eq!(wide(&state, q).await["value"], [0.0]);
    }
}
