//! Every query type with a description and a complete, runnable example: served by the
//! `query-types` resource (the frontend's query-type picker) and checked against the README.
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryTypeInfo {
    pub query_type: &'static str,
    pub description: &'static str,
    pub example: Value,
}

fn info(query_type: &'static str, description: &'static str, example: Value) -> QueryTypeInfo {
    QueryTypeInfo { query_type, description, example }
}

pub fn query_types() -> Vec<QueryTypeInfo> {
    vec![
        info(
            "stat",
            "One number for the range (sessions, active_sessions, cost, list_cost, subagent_cost, tokens, cache_creation_5m_tokens, cache_creation_1h_tokens, active_time, lines_added, lines_removed, commits, pull_requests, api_requests, api_errors, queued_sends, …), optionally with the previous period and the change.",
            json!({"queryType": "stat", "measure": "cost", "compare": "previous_period"}),
        ),
        info(
            "breakdown",
            "A measure by any attribute (model, user.id, user.email, team, terminal.type, app.version, query_source, query_class, agent.name, repository, branch, provider, data_source, effort, speed, …) as wide time series or table, top N plus \"other\".",
            json!({"queryType": "breakdown", "measure": "tokens", "groupBy": "team", "format": "time_series", "limit": 5}),
        ),
        info(
            "cost_by_model",
            "Cost per model over time (time_series) or totals with tokens by type (table; events also split cache writes into 5-minute and 1-hour).",
            json!({"queryType": "cost_by_model", "source": "metrics", "format": "table"}),
        ),
        info(
            "sessions",
            "One row per session: user, team, repository, branch, first/last seen, prompts, API calls, cost and subagent share, tokens, tools, errors, lines, commits, PRs, active time.",
            json!({"queryType": "sessions", "limit": 100}),
        ),
        info(
            "session_timeline",
            "Every event of one session in order, with parameters.",
            json!({"queryType": "session_timeline", "sessionId": "4a513f9f-1086-4ca5-adf4-9dcd94af912f"}),
        ),
        info(
            "prompts",
            "One row per prompt: time, session, prompt text when logged, API calls, tool calls, tokens, cost, duration, cost per tool call.",
            json!({"queryType": "prompts", "limit": 50}),
        ),
        info(
            "api_latency",
            "Model-call latency percentiles (p50/p75/p90/p95/p99) of duration, time to first token and (spans) first content, over time or by a group as a table.",
            json!({"queryType": "api_latency", "percentiles": [50, 95, 99], "latencies": ["duration", "ttft"], "groupBy": "model", "format": "time_series"}),
        ),
        info(
            "api_errors",
            "API error rate (api_error ÷ requests) over time by status code or overall; table per status code with retries exhausted.",
            json!({"queryType": "api_errors", "format": "time_series", "byStatusCode": false}),
        ),
        info(
            "tool_success_rate",
            "Per tool and tool source (builtin, MCP, plugin): calls, successes, failures, success rate, duration p50/p95/p99, accepts and rejects.",
            json!({"queryType": "tool_success_rate"}),
        ),
        info("tool_errors", "Failed tool calls by tool and error type, with an example message.", json!({"queryType": "tool_errors"})),
        info(
            "tool_decisions",
            "Accept/reject decisions by tool, source, permission mode and tool source, from tool_decision events and the code_edit_tool.decision metric.",
            json!({"queryType": "tool_decisions"}),
        ),
        info(
            "tool_costs",
            "Cost per tool call where attributable: each call is charged the model call that requested it.",
            json!({"queryType": "tool_costs"}),
        ),
        info(
            "productivity",
            "Lines added/removed, commits, pull requests and active time (cli/user), optionally by a group such as model.",
            json!({"queryType": "productivity", "groupBy": "model"}),
        ),
        info(
            "logs",
            "Events as log lines for Explore: filter by event names and free text in prompt, response, error and tool parameters.",
            json!({"queryType": "logs", "eventNames": ["api_error", "tool_result"], "search": "timeout", "limit": 500}),
        ),
        info(
            "logs_volume",
            "How many events of a logs query fall in each interval, one series per level (error, warning, info): Explore's logs volume histogram.",
            json!({"queryType": "logs_volume", "eventNames": ["api_error", "tool_result"]}),
        ),
        info(
            "log_context",
            "The events of one session before and/or after a point in it (sessionId and time in epoch ms, with the event's sequence; or a spanId), direction before, after or around, limit per side, whatever the time range: Explore's log context and a span's events.",
            json!({"queryType": "log_context", "sessionId": "0b6f9d4e-5f41-4c8a-9e1e-2d7c3b8a6f10", "time": 1_767_225_600_000_i64, "sequence": 12, "direction": "around", "limit": 20}),
        ),
        info(
            "live",
            "Events as they arrive, of one session or of all (Grafana Live): the log lines of each export from the moment the panel or Explore's live mode subscribes.",
            json!({"queryType": "live", "sessionId": "0b6f9d4e-5f41-4c8a-9e1e-2d7c3b8a6f10"}),
        ),
        info(
            "traces",
            "Interactions (one root span per prompt) with start, duration, prompt, model calls, tools, errors and cost, newest first; filter by minimum duration, errors only, tool and session. Each trace id opens its trace.",
            json!({"queryType": "traces", "minDurationMs": 1000, "errorsOnly": false, "tool": "Bash", "limit": 50}),
        ),
        info(
            "trace",
            "A prompt's spans (interaction → llm_request → tool) in Grafana's trace view, by prompt id or trace id.",
            json!({"queryType": "trace", "promptId": "b0f9a1f4-3c8e-4d5e-9a4b-1f2e3d4c5b6a"}),
        ),
        info(
            "event_counts",
            "Counts, failures and durations of every event and span name (hooks, MCP connections, compaction, skills, subagents, plugins, auth, refusals, …).",
            json!({"queryType": "event_counts"}),
        ),
        info(
            "repositories",
            "One row per repository and branch (vcs.repository.*, vcs.ref.head.*, Claude Code 2.1.332+ with OTEL_METRICS_INCLUDE_REPOSITORY=1): latest commit, sessions, users, cost, tokens, API calls, commits, pull requests, lines.",
            json!({"queryType": "repositories", "limit": 100}),
        ),
        info(
            "agents",
            "Model calls by query class (main, subagent, auxiliary) and agent: calls, cost and its share, tokens, durations; subagent runs and tool uses.",
            json!({"queryType": "agents"}),
        ),
        info(
            "hooks",
            "Hook executions by hook event and name: hooks run, successes, blocking, errors, cancelled, durations, output sizes, registrations.",
            json!({"queryType": "hooks"}),
        ),
        info(
            "mcp",
            "MCP tools by server and tool (mcp_server.name, mcp_tool.name, tool_source, mcp__server__tool names): calls, failures, success rate, durations, accepts, rejects, server connections.",
            json!({"queryType": "mcp"}),
        ),
        info(
            "skills",
            "Skills activated: by skill, source and plugin, with sessions, users and invocation triggers.",
            json!({"queryType": "skills"}),
        ),
        info(
            "plugins",
            "Plugins loaded: marketplace, scope, how enabled, hooks/MCP/skills/commands/agents they bring, sessions, users, hooks registered.",
            json!({"queryType": "plugins"}),
        ),
        info(
            "managed_settings",
            "Managed settings each user and host runs with (trigger, source behaviour, sources, helper state); one row per distinct state.",
            json!({"queryType": "managed_settings"}),
        ),
        info(
            "fleet",
            "Claude Code versions, providers (firstParty, Bedrock, Vertex, Foundry), custom base URLs and platforms in use: users, sessions, cost.",
            json!({"queryType": "fleet"}),
        ),
        info(
            "variable",
            "Distinct values of session, model, user, tool, event_name or any attribute / resource key, for template variables.",
            json!({"queryType": "variable", "key": "model"}),
        ),
        info(
            "annotations",
            "Annotations for session starts, API errors and rejected tools.",
            json!({"queryType": "annotations", "kinds": ["session_start", "api_error", "tool_reject"]}),
        ),
        info(
            "sql",
            "Raw read-only SQL with macros ($__timeFilter, $__timeGroup, $__interval, …) as table, time series or logs.",
            json!({"queryType": "sql", "format": "time_series", "rawSql": "SELECT $__timeGroupAlias(time, $__interval, 0), model, sum(cost_usd) AS cost_usd FROM events WHERE $__timeFilter(time) AND event_name = 'api_request' GROUP BY ALL ORDER BY 1"}),
        ),
        info(
            "budget",
            "Spent, budget, share used and forecast at the period's end from the burn rate so far, per budget of the datasource settings (organisation, team or user; monthly or weekly); measure cost or list_cost.",
            json!({"queryType": "budget", "measure": "cost"}),
        ),
        info(
            "usage_windows",
            "Claude plans' 5-hour usage windows per user (opening at their first request): calls, tokens, cost, and the open window's burn rate, tokens per minute and projection; output weekly for weekly totals, limits for the plan's own used percentages the statusline recorded.",
            json!({"queryType": "usage_windows", "output": "windows"}),
        ),
        info(
            "usage_report",
            "Model calls per local day, week or month (period; timezone an IANA zone) and/or per group (model, user, team, project, repository, branch, session, …): sessions, calls, tokens by type, cost and list cost; breakdown adds a row per model under each row, totals a last row.",
            json!({"queryType": "usage_report", "period": "day", "timezone": "Europe/Berlin", "groupBy": "project", "breakdown": true}),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::testing::state_with;
    use crate::query::testing::{ctx, frames};
    use crate::test_fixtures::run as fixture_run;

    #[tokio::test]
    async fn every_example_parses_runs_and_is_in_the_readme() {
        let (state, _dir) = state_with(&fixture_run("tools", "grpc")).await;
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for qt in query_types() {
            assert!(seen.insert(qt.query_type), "{} listed twice", qt.query_type);
            assert_eq!(qt.example["queryType"], qt.query_type);
            let result = frames(&state, qt.example.clone(), ctx()).await;
            assert!(result.is_ok(), "{}: {:?}", qt.query_type, result.err());
            let compact = serde_json::to_string(&qt.example).unwrap();
            assert!(readme.contains(&compact), "README lacks the example of {}: {compact}", qt.query_type);
        }
        // every variant of the model is listed
        let variants = [
            "sessions",
            "session_timeline",
            "cost_by_model",
            "tool_success_rate",
            "stat",
            "breakdown",
            "api_latency",
            "api_errors",
            "tool_errors",
            "tool_decisions",
            "tool_costs",
            "productivity",
            "prompts",
            "logs",
            "logs_volume",
            "log_context",
            "live",
            "trace",
            "traces",
            "event_counts",
            "repositories",
            "agents",
            "hooks",
            "mcp",
            "skills",
            "plugins",
            "managed_settings",
            "fleet",
            "budget",
            "usage_windows",
            "usage_report",
            "variable",
            "annotations",
            "sql",
        ];
        assert_eq!(seen.len(), variants.len());
        // the query editor knows every type and measure
        let types = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/frontend/src/types.ts")).unwrap();
        let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/frontend/src/querySpec.ts")).unwrap();
        for qt in &seen {
            assert!(types.contains(&format!("| '{qt}'")), "frontend/src/types.ts lacks query type {qt}");
            assert!(spec.contains(&format!("\n  {qt}: {{")), "frontend/src/querySpec.ts lacks query type {qt}");
        }
        // every measure, as serde lists them when refusing an unknown one
        let refused = crate::query::model::parse(&json!({"queryType": "stat", "measure": "?"}), "").unwrap_err();
        let expected = refused.split("expected one of").nth(1).unwrap();
        let measures: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        assert!(measures.len() > 25, "{refused}");
        for m in measures {
            assert!(spec.contains(&format!("option('{m}'")), "frontend/src/querySpec.ts lacks measure {m}");
        }
        // and every question of the README's 2.1.332 table runs
        let (state, _dir) = state_with(&crate::test_fixtures::transcript_run("tools-repo-2.1.332")).await;
        let section = readme.split("### Claude Code 2.1.332").nth(1).and_then(|s| s.split("\n### ").next()).unwrap();
        let questions: Vec<&str> = section.lines().filter(|l| l.starts_with("| ") && l.contains("`{")).collect();
        assert!(questions.len() >= 20, "{}", questions.len());
        for line in questions {
            let json = line.split('`').nth(1).unwrap();
            let q: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{line}: {e}"));
            let result = frames(&state, q, ctx()).await;
            assert!(result.is_ok(), "{line}: {:?}", result.err());
        }
        assert!(variants.iter().all(|v| seen.contains(v)));
    }
}
