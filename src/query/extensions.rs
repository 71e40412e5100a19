//! What extends Claude Code: hooks, MCP servers and their tools, skills and plugins. Each is
//! answered from the events Claude Code logs for it; numbers it sends as strings are cast.
use super::filters::Table;
use super::rollup;
use super::sql::Sql;
use super::Runner;

/// SQL for an attribute of the event as text (a fixed key of ours, never user input).
fn attr(key: &str) -> String {
    debug_assert!(!key.contains('\'') && !key.contains('"'));
    format!("json_extract_string(attributes, '{key}')")
}

/// The same as a number (Claude Code sends many counts as strings).
fn int(text: &str) -> String {
    format!("TRY_CAST({text} AS BIGINT)")
}

fn attr_int(key: &str) -> String {
    int(&attr(key))
}

/// One row per hook event and hook name (e.g. `PreToolUse`, `PreToolUse:Bash`): executions, the
/// hooks they ran and their outcomes (success, blocking, non-blocking error, cancelled), total
/// and p95 duration, the output they fed back, and how many hooks are registered for the event.
pub fn hooks_sql(r: &Runner) -> Result<Sql, super::QueryError> {
    if r.rollups() {
        return hooks_from_rollups(r);
    }
    let mut p = r.params();
    let filter = r.filters.clause(Table::Events, &mut p)?;
    let text = format!(
        "
WITH runs AS (
    SELECT coalesce(hook_event, '(none)') AS hook_event,
        coalesce(hook_name, '(none)') AS hook_name,
        count(*) AS executions,
        coalesce(sum(num_hooks), 0)::BIGINT AS hooks_run,
        coalesce(sum(num_success), 0)::BIGINT AS successes,
        coalesce(sum(num_blocking), 0)::BIGINT AS blocking,
        coalesce(sum(num_non_blocking_error), 0)::BIGINT AS non_blocking_errors,
        coalesce(sum(num_cancelled), 0)::BIGINT AS cancelled,
        coalesce(sum(duration_ms), 0) AS total_duration_ms,
        quantile_cont(duration_ms, 0.95) AS p95_duration_ms,
        coalesce(sum(stdout_chars), 0)::BIGINT AS stdout_chars,
        coalesce(sum(additional_context_chars), 0)::BIGINT AS additional_context_chars,
        coalesce(sum(system_message_chars), 0)::BIGINT AS system_message_chars,
        count(DISTINCT session_id) AS sessions
    FROM events
    WHERE event_name = 'hook_execution_complete' AND time BETWEEN $1 AND $2{filter}
    GROUP BY 1, 2
), registered AS (
    SELECT coalesce(hook_event, '(none)') AS hook_event, count(*) AS registrations
    FROM events
    WHERE event_name = 'hook_registered' AND time BETWEEN $1 AND $2{filter}
    GROUP BY 1
)
{HOOKS_TABLE}"
    );
    Ok(p.into_sql(text))
}

/// The hooks table from `runs` and `registered`.
const HOOKS_TABLE: &str = "SELECT hook_event, coalesce(hook_name, '(not run)') AS hook_name,
    coalesce(executions, 0) AS executions, coalesce(hooks_run, 0) AS hooks_run,
    coalesce(successes, 0) AS successes, coalesce(blocking, 0) AS blocking,
    coalesce(non_blocking_errors, 0) AS non_blocking_errors, coalesce(cancelled, 0) AS cancelled,
    coalesce(total_duration_ms, 0) AS total_duration_ms, p95_duration_ms,
    coalesce(stdout_chars, 0) AS stdout_chars, coalesce(additional_context_chars, 0) AS additional_context_chars,
    coalesce(system_message_chars, 0) AS system_message_chars,
    coalesce(registrations, 0) AS registrations,
    coalesce(sessions, 0) AS sessions
FROM runs FULL OUTER JOIN registered USING (hook_event)
ORDER BY executions DESC, hook_event, hook_name";

/// The same from the rollups; the p95 from their sketch (within 1 %).
fn hooks_from_rollups(r: &Runner) -> Result<Sql, super::QueryError> {
    use crate::store::rollup::{HOOK_DURATIONS, HOOK_REGISTRATIONS, HOOK_RUNS, HOOK_SESSIONS};
    let mut p = super::sql::Params::empty();
    let cov = rollup::coverage(r)?;
    let runs = rollup::parts_sql(&HOOK_RUNS, &cov, &mut p);
    let sums = HOOK_RUNS
        .values
        .iter()
        .skip(1)
        .map(|v| {
            let cast = if v.sql_type == "BIGINT" { "::BIGINT" } else { "" };
            format!("coalesce({}, 0){cast} AS {}", v.merge, v.name)
        })
        .collect::<Vec<_>>()
        .join(",\n        ");
    let quantiles = rollup::quantiles_select(r, &HOOK_DURATIONS, &cov, &["hook_event", "hook_name"], &[(0.95, "p95_duration_ms")], &mut p)?;
    let sessions = rollup::parts_sql(&HOOK_SESSIONS, &cov, &mut p);
    let registered = rollup::parts_sql(&HOOK_REGISTRATIONS, &cov, &mut p);
    let text = format!(
        "
WITH sums AS (
    SELECT hook_event, hook_name, sum(executions)::BIGINT AS executions,
        {sums}
    FROM ({runs}) GROUP BY 1, 2
), q AS ({quantiles}
), hook_sessions AS (
    SELECT hook_event, hook_name, count(DISTINCT session_id) AS sessions FROM ({sessions}) GROUP BY 1, 2
), runs AS (
    SELECT sums.*, q.p95_duration_ms, coalesce(hook_sessions.sessions, 0) AS sessions
    FROM sums LEFT JOIN q USING (hook_event, hook_name) LEFT JOIN hook_sessions USING (hook_event, hook_name)
), registered AS (
    SELECT hook_event, sum(registrations)::BIGINT AS registrations FROM ({registered}) GROUP BY 1
)
{HOOKS_TABLE}"
    );
    Ok(p.into_sql(text))
}

/// The MCP server and tool of a tool event: its `mcp_server.name` and `mcp_tool.name` where
/// sent, else parsed from the tool name Claude Code gives MCP tools (`mcp__<server>__<tool>`).
const MCP_SERVER: &str = "coalesce(mcp_server_name, \
    CASE WHEN tool_name LIKE 'mcp\\_\\_%' ESCAPE '\\' THEN split_part(tool_name, '__', 2) END)";
const MCP_TOOL: &str = "coalesce(mcp_tool_name, \
    CASE WHEN tool_name LIKE 'mcp\\_\\_%' ESCAPE '\\' THEN nullif(array_to_string(string_split(tool_name, '__')[3:], '__'), '') END)";

/// One row per MCP server and tool: calls, failures, success rate, p50/p95 duration, accepts and
/// rejects; and the server's connections and failed connections (`mcp_server_connection`).
/// A tool counts as MCP when its decision says `tool_source` is not builtin or its name is an
/// MCP tool name; built-in tools are in `tool_success_rate`.
pub fn mcp_sql(r: &Runner) -> Result<Sql, String> {
    let mut p = r.params();
    let filter = r.filters.clause(Table::Events, &mut p)?;
    let text = format!(
        "
WITH parsed AS (
    SELECT event_name, tool_use_id, success, decision, duration_ms, tool_name, tool_source, mcp_server_name, mcp_tool_name
    FROM events
    WHERE event_name IN ('tool_result', 'tool_decision') AND time BETWEEN $1 AND $2{filter}
), tool_events AS (
    SELECT event_name, tool_use_id, success, decision, duration_ms, tool_name,
        {MCP_SERVER} AS server, {MCP_TOOL} AS tool, tool_source
    FROM parsed
), source_of AS (
    SELECT tool_use_id, any_value(tool_source) AS tool_source FROM tool_events
    WHERE event_name = 'tool_decision' AND tool_use_id IS NOT NULL GROUP BY 1
), mcp AS (
    SELECT t.*, coalesce(t.tool_source, s.tool_source) AS source
    FROM tool_events t LEFT JOIN source_of s USING (tool_use_id)
    WHERE t.server IS NOT NULL OR coalesce(t.tool_source, s.tool_source, 'builtin') <> 'builtin'
), tools AS (
    SELECT coalesce(server, '(unknown)') AS mcp_server,
        coalesce(tool, tool_name, '(unknown)') AS mcp_tool,
        coalesce(any_value(source), '(none)') AS tool_source,
        count(*) FILTER (WHERE event_name = 'tool_result') AS calls,
        count(*) FILTER (WHERE event_name = 'tool_result' AND success = false) AS failures,
        quantile_cont(duration_ms, 0.5) FILTER (WHERE event_name = 'tool_result') AS p50_duration_ms,
        quantile_cont(duration_ms, 0.95) FILTER (WHERE event_name = 'tool_result') AS p95_duration_ms,
        count(*) FILTER (WHERE decision = 'accept') AS accepts,
        count(*) FILTER (WHERE decision = 'reject') AS rejects
    FROM mcp
    GROUP BY 1, 2
), connections AS (
    SELECT coalesce({server_name}, '(unknown)') AS mcp_server,
        count(*) AS connections,
        count(*) FILTER (WHERE {status} NOT IN ('connected', 'success')) AS connection_failures
    FROM events
    WHERE event_name = 'mcp_server_connection' AND time BETWEEN $1 AND $2{filter}
    GROUP BY 1
)
SELECT mcp_server, coalesce(mcp_tool, '(no calls)') AS mcp_tool, coalesce(tool_source, '(none)') AS tool_source,
    coalesce(calls, 0) AS calls, coalesce(failures, 0) AS failures,
    (calls - failures)::DOUBLE / nullif(calls, 0) AS success_rate,
    p50_duration_ms, p95_duration_ms,
    coalesce(accepts, 0) AS accepts, coalesce(rejects, 0) AS rejects,
    coalesce(connections, 0) AS connections, coalesce(connection_failures, 0) AS connection_failures
FROM tools FULL OUTER JOIN connections USING (mcp_server)
ORDER BY calls DESC, mcp_server, mcp_tool",
        server_name = attr("server_name"),
        status = attr("status"),
    );
    Ok(p.into_sql(text))
}

/// One row per skill: activations, sessions and users, how it was invoked and where it came
/// from (`skill_activated`).
pub fn skills_sql(r: &Runner) -> Result<Sql, String> {
    let mut p = r.params();
    let filter = r.filters.clause(Table::Events, &mut p)?;
    let text = format!(
        "
SELECT coalesce({name}, '(unknown)') AS skill,
    coalesce({source}, '(none)') AS skill_source,
    coalesce({plugin}, '(none)') AS plugin,
    count(*) AS activations,
    count(DISTINCT session_id) AS sessions,
    count(DISTINCT user_id) AS users,
    string_agg(DISTINCT {trigger}, ', ' ORDER BY {trigger}) AS invocation_triggers,
    max(time) AS last_seen
FROM events
WHERE event_name = 'skill_activated' AND time BETWEEN $1 AND $2{filter}
GROUP BY 1, 2, 3
ORDER BY activations DESC, skill",
        name = attr("skill.name"),
        source = attr("skill.source"),
        plugin = attr("plugin.name"),
        trigger = attr("invocation_trigger"),
    );
    Ok(p.into_sql(text))
}

/// One row per plugin: where it comes from, how it was enabled, what it brings (hooks, MCP
/// servers, skills, commands, agents), the sessions that loaded it and the hooks it registered.
pub fn plugins_sql(r: &Runner) -> Result<Sql, String> {
    let mut p = r.params();
    let filter = r.filters.clause(Table::Events, &mut p)?;
    let text = format!(
        "
WITH loaded AS (
    SELECT coalesce(plugin_name, '(unknown)') AS plugin,
        coalesce(any_value({marketplace}), '(none)') AS marketplace,
        coalesce(any_value({scope}), '(none)') AS scope,
        coalesce(any_value({enabled_via}), '(none)') AS enabled_via,
        bool_or(TRY_CAST({has_hooks} AS BOOLEAN)) AS has_hooks,
        bool_or(TRY_CAST({has_mcp} AS BOOLEAN)) AS has_mcp,
        max({skills})::BIGINT AS skills,
        max({commands})::BIGINT AS commands,
        max({agents})::BIGINT AS agents,
        count(*) AS loads,
        count(DISTINCT session_id) AS sessions,
        count(DISTINCT user_id) AS users,
        max(time) AS last_seen
    FROM events
    WHERE event_name = 'plugin_loaded' AND time BETWEEN $1 AND $2{filter}
    GROUP BY 1
), hooks AS (
    SELECT plugin_name AS plugin, count(*) AS hooks_registered
    FROM events
    WHERE event_name = 'hook_registered' AND plugin_name IS NOT NULL AND time BETWEEN $1 AND $2{filter}
    GROUP BY 1
)
SELECT plugin, marketplace, scope, enabled_via, has_hooks, has_mcp, skills, commands, agents,
    loads, sessions, users, coalesce(hooks_registered, 0) AS hooks_registered, last_seen
FROM loaded LEFT JOIN hooks USING (plugin)
ORDER BY sessions DESC, plugin",
        marketplace = attr("marketplace.name"),
        scope = attr("plugin.scope"),
        enabled_via = attr("enabled_via"),
        has_hooks = attr("has_hooks"),
        has_mcp = attr("has_mcp"),
        skills = attr_int("skill_path_count"),
        commands = attr_int("command_path_count"),
        agents = attr_int("agent_path_count"),
    );
    Ok(p.into_sql(text))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::ingest::testing::state_with;
    use crate::query::testing::{columns, ctx, frames, wide};
    use crate::test_fixtures::{run, transcript_run};

    /// tools-repo-2.1.332: two hooks registered from project settings (PreToolUse on Bash,
    /// PostToolUse on Edit|Write), run on each matching tool call; three built-in plugins.
    #[tokio::test]
    async fn hooks_and_plugins_of_a_2_1_332_session() {
        let (state, _dir) = state_with(&transcript_run("tools-repo-2.1.332")).await;
        let c = wide(&state, json!({"queryType": "hooks"})).await;
        assert_eq!(c["hook_event"], ["PreToolUse", "PostToolUse", "PostToolUse"]);
        assert_eq!(c["hook_name"], ["PreToolUse:Bash", "PostToolUse:Edit", "PostToolUse:Write"]);
        assert_eq!(c["executions"], [3, 1, 1]);
        assert_eq!(c["hooks_run"], [3, 2, 2]);
        assert_eq!(c["successes"], [3, 2, 2]);
        for zero in ["blocking", "non_blocking_errors", "cancelled", "stdout_chars", "additional_context_chars", "system_message_chars"] {
            assert_eq!(c[zero], [0, 0, 0], "{zero}");
        }
        assert_eq!(c["total_duration_ms"], [32.0, 5.0, 10.0]);
        assert_eq!(c["registrations"], [1, 1, 1]);

        let c = wide(&state, json!({"queryType": "plugins"})).await;
        assert_eq!(c["plugin"], ["cc-plugin-agents-md", "cc-plugin-plugin-authoring", "cc-plugin-privacy"]);
        assert_eq!(c["marketplace"], ["builtin", "builtin", "builtin"]);
        assert_eq!(c["scope"], ["default-bundle", "default-bundle", "default-bundle"]);
        assert_eq!(c["enabled_via"], ["default-enable", "default-enable", "default-enable"]);
        assert_eq!(c["has_hooks"], [true, true, true]);
        assert_eq!(c["has_mcp"], [false, false, false]);
        assert_eq!(c["loads"], [1, 1, 1]);
        assert_eq!(c["sessions"], [1, 1, 1]);
        assert_eq!(c["skills"], [0, 0, 0]);

        // no MCP tool and no skill ran: no data, not an error
        for q in ["mcp", "skills"] {
            let fs = frames(&state, json!({"queryType": q}), ctx()).await.unwrap();
            assert!(fs[0].fields.is_empty(), "{q}");
        }
    }

    #[tokio::test]
    async fn claude_code_2_1_197_has_hooks_but_no_plugin_events() {
        let (state, _dir) = state_with(&run("tools", "grpc")).await;
        let c = wide(&state, json!({"queryType": "hooks"})).await;
        assert_eq!(c["hook_name"], ["PreToolUse:Bash", "PostToolUse:Edit", "PostToolUse:Write"]);
        for q in ["plugins", "mcp", "skills"] {
            let fs = frames(&state, json!({"queryType": q}), ctx()).await.unwrap();
            assert!(fs[0].fields.is_empty(), "{q}");
        }
    }

    /// MCP tools are named `mcp__<server>__<tool>`; a decision's `tool_source` marks the call (rows
    /// as the store writes them: `tool_source` in its column).
    #[test]
    fn mcp_tools_by_server_and_tool() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        for m in crate::store::schema::migrations() {
            conn.execute_batch(&m).unwrap();
        }
        conn.execute_batch(
            r#"INSERT INTO events (time, received_at, event_name, tool_name, tool_use_id, success, decision, duration_ms, tool_source, attributes, resource) VALUES
                (TIMESTAMP '2026-12-01 10:00:00', now(), 'tool_decision', 'mcp__github__create_issue', 't1', NULL, 'accept', NULL, 'mcp', '{}', '{}'),
                (TIMESTAMP '2026-12-01 10:00:01', now(), 'tool_result', 'mcp__github__create_issue', 't1', true, NULL, 40, NULL, '{}', '{}'),
                (TIMESTAMP '2026-12-01 10:00:02', now(), 'tool_result', 'mcp__github__create_issue', 't2', false, NULL, 60, NULL, '{}', '{}'),
                (TIMESTAMP '2026-12-01 10:00:03', now(), 'tool_result', 'Bash', 't3', true, NULL, 5, NULL, '{}', '{}'),
                (TIMESTAMP '2026-12-01 10:00:04', now(), 'mcp_server_connection', NULL, NULL, NULL, NULL, 12, NULL, '{"status":"connected","server_name":"github"}', '{}'),
                (TIMESTAMP '2026-12-01 10:00:05', now(), 'mcp_server_connection', NULL, NULL, NULL, NULL, 30, NULL, '{"status":"failed","server_name":"jira"}', '{}')"#,
        )
        .unwrap();
        let filters = crate::query::filters::Filters::default();
        let ctx = ctx();
        let settings = crate::query::QuerySettings::default();
        let r = crate::query::Runner::new(&conn, &ctx, &filters, &settings);
        let t = super::mcp_sql(&r).unwrap().run(&conn).unwrap();
        let frame = t.into_frame("mcp", String::new(), crate::query::table::Units::ByName);
        let c = columns(&frame);
        assert_eq!(c["mcp_server"], ["github", "jira"]);
        assert_eq!(c["mcp_tool"], ["create_issue", "(no calls)"]);
        assert_eq!(c["tool_source"], ["mcp", "(none)"]);
        assert_eq!(c["calls"], [2, 0]);
        assert_eq!(c["failures"], [1, 0]);
        assert_eq!(c["success_rate"], [json!(0.5), Value::Null]);
        assert_eq!(c["accepts"], [1, 0]);
        assert_eq!(c["connections"], [1, 1]);
        assert_eq!(c["connection_failures"], [0, 1]);
    }
}
