//! Who made the model calls: the main loop, subagents (by agent), or auxiliary calls (titles,
//! compaction, …). From `api_request` events: `query_source`, and in a subagent `agent_id` and
//! `agent.name`; subagent runs from `subagent_completed` (Claude Code 2.1.332 and later).
use super::filters::{query_class_sql, Table};
use super::rollup;
use super::sql::Sql;
use super::Runner;

/// The agents table's columns from `calls` (with their percentiles) joined to `runs`, the same
/// for the rows and the rollups.
const AGENT_COLUMNS: &str = "query_class, agent,
    coalesce(api_requests, 0) AS api_requests,
    coalesce(cost_usd, 0) AS cost_usd,
    coalesce(cost_usd, 0) / nullif(sum(coalesce(cost_usd, 0)) OVER (), 0) AS cost_ratio,
    coalesce(input_tokens, 0) AS input_tokens,
    coalesce(output_tokens, 0) AS output_tokens,
    coalesce(cache_read_tokens, 0) AS cache_read_tokens,
    coalesce(cache_creation_tokens, 0) AS cache_creation_tokens,
    p50_duration_ms, p95_duration_ms,
    coalesce(runs, 0) AS runs,
    coalesce(tool_uses, 0) AS tool_uses,
    p50_run_duration_ms";

/// One row per query class and agent: API calls, cost and its share, tokens by type, call
/// durations; for subagents also their runs, tool uses and run durations.
pub fn agents_sql(r: &Runner) -> Result<Sql, super::QueryError> {
    if r.rollups() {
        return agents_from_rollups(r);
    }
    let mut p = r.params();
    let filter = r.filters.clause(Table::Events, &mut p)?;
    let class = query_class_sql(Table::Events);
    let text = format!(
        "
WITH calls AS (
    SELECT coalesce({class}, '(none)') AS query_class,
        coalesce(agent_name,
            CASE WHEN {class} = 'subagent' THEN '(unknown)' ELSE '(none)' END) AS agent,
        count(*) AS api_requests,
        coalesce(sum(cost_usd), 0) AS cost_usd,
        coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
        coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
        coalesce(sum(cache_read_tokens), 0)::BIGINT AS cache_read_tokens,
        coalesce(sum(cache_creation_tokens), 0)::BIGINT AS cache_creation_tokens,
        quantile_cont(duration_ms, 0.5) AS p50_duration_ms,
        quantile_cont(duration_ms, 0.95) AS p95_duration_ms
    FROM events
    WHERE event_name = 'api_request' AND time BETWEEN $1 AND $2{filter}
    GROUP BY 1, 2
), runs AS (
    SELECT 'subagent' AS query_class,
        coalesce(agent_type, '(unknown)') AS agent,
        count(*) AS runs,
        sum(total_tool_uses)::BIGINT AS tool_uses,
        quantile_cont(duration_ms, 0.5) AS p50_run_duration_ms
    FROM events
    WHERE event_name = 'subagent_completed' AND time BETWEEN $1 AND $2{filter}
    GROUP BY 1, 2
)
SELECT {AGENT_COLUMNS}
FROM calls FULL OUTER JOIN runs USING (query_class, agent)
ORDER BY cost_usd DESC, query_class, agent"
    );
    Ok(p.into_sql(text))
}

/// The same from the rollups; percentiles from their sketches (within 1 %).
fn agents_from_rollups(r: &Runner) -> Result<Sql, super::QueryError> {
    use crate::store::rollup::{AGENT_CALLS, AGENT_CALL_DURATIONS, AGENT_RUNS, AGENT_RUN_DURATIONS};
    let mut p = super::sql::Params::empty();
    let cov = rollup::coverage(r)?;
    let calls = rollup::parts_sql(&AGENT_CALLS, &cov, &mut p);
    let call_quantiles = rollup::quantiles_select(
        r,
        &AGENT_CALL_DURATIONS,
        &cov,
        &["query_class", "agent"],
        &[(0.5, "p50_duration_ms"), (0.95, "p95_duration_ms")],
        &mut p,
    )?;
    let runs = rollup::parts_sql(&AGENT_RUNS, &cov, &mut p);
    let run_quantiles = rollup::quantiles_select(r, &AGENT_RUN_DURATIONS, &cov, &["agent"], &[(0.5, "p50_run_duration_ms")], &mut p)?;
    let text = format!(
        "
WITH calls AS (
    SELECT query_class, agent,
        sum(api_requests)::BIGINT AS api_requests,
        coalesce(sum(cost_usd), 0) AS cost_usd,
        coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
        coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
        coalesce(sum(cache_read_tokens), 0)::BIGINT AS cache_read_tokens,
        coalesce(sum(cache_creation_tokens), 0)::BIGINT AS cache_creation_tokens
    FROM ({calls}) GROUP BY 1, 2
), call_q AS ({call_quantiles}
), runs AS (
    SELECT 'subagent' AS query_class, agent, sum(runs)::BIGINT AS runs, sum(tool_uses)::BIGINT AS tool_uses
    FROM ({runs}) GROUP BY 2
), run_q AS ({run_quantiles}
)
SELECT {AGENT_COLUMNS}
FROM (calls LEFT JOIN call_q USING (query_class, agent))
    FULL OUTER JOIN (runs LEFT JOIN run_q USING (agent)) USING (query_class, agent)
ORDER BY cost_usd DESC, query_class, agent"
    );
    Ok(p.into_sql(text))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::ingest::testing::state_with;
    use crate::query::testing::{all_close, ctx, frames, wide};
    use crate::test_fixtures::{run, transcript_run};

    // subagent-2.1.332: the main loop (opus) calls the Agent tool once; the subagent (haiku,
    // general-purpose) makes 2 calls and one Bash call. Numbers from its api_request events.
    const MAIN_COST: f64 = 0.019364 + 0.00266;
    const SUBAGENT_COST: f64 = 0.0002422 + 0.0000364;

    #[tokio::test]
    async fn calls_cost_and_tokens_by_query_class_and_agent() {
        let (state, _dir) = state_with(&transcript_run("subagent-2.1.332")).await;
        let c = wide(&state, json!({"queryType": "agents"})).await;
        assert_eq!(c["query_class"], ["main", "subagent"]);
        assert_eq!(c["agent"], ["(none)", "general-purpose"]);
        assert_eq!(c["api_requests"], [2, 2]);
        assert!(all_close(&c["cost_usd"], &[MAIN_COST, SUBAGENT_COST]), "{:?}", c["cost_usd"]);
        let total = MAIN_COST + SUBAGENT_COST;
        assert!(all_close(&c["cost_ratio"], &[MAIN_COST / total, SUBAGENT_COST / total]));
        assert_eq!(c["input_tokens"], [46, 16]);
        assert_eq!(c["output_tokens"], [82, 44]);
        assert_eq!(c["cache_read_tokens"], [3000, 1500]);
        assert_eq!(c["cache_creation_tokens"], [3200, 1620]);
        assert_eq!(c["runs"], [0, 1]);
        assert_eq!(c["tool_uses"], [0, 1]);
        assert_eq!(c["p50_run_duration_ms"], [Value::Null, json!(143.0)]);

        // the same split from the metrics (query_source main/subagent) and the events
        for source in ["metrics", "events"] {
            let q = json!({"queryType": "breakdown", "measure": "cost", "groupBy": "query_class", "source": source, "format": "table"});
            let c = wide(&state, q).await;
            assert_eq!(c["query_class"], ["main", "subagent"], "{source}");
            assert!(all_close(&c["cost_usd"], &[MAIN_COST, SUBAGENT_COST]), "{source}: {:?}", c["cost_usd"]);
            let q = json!({"queryType": "stat", "measure": "subagent_cost", "source": source});
            assert!(all_close(&wide(&state, q).await["value"], &[SUBAGENT_COST]), "{source}");
            let q = json!({"queryType": "breakdown", "measure": "tokens", "groupBy": "agent.name", "source": source, "format": "table"});
            let c = wide(&state, q).await;
            assert_eq!(c["agent.name"], ["(none)", "general-purpose"], "{source}");
            assert!(
                all_close(&c["tokens"], &[(46 + 82 + 3000 + 3200) as f64, (16 + 44 + 1500 + 1620) as f64]),
                "{source}: {:?}",
                c["tokens"]
            );
        }
        let q = json!({"queryType": "breakdown", "measure": "api_requests", "groupBy": "query_class", "format": "table"});
        assert_eq!(wide(&state, q).await["api_requests"], [2, 2]);
        // and filtered: the subagent's calls only
        let q =
            json!({"queryType": "stat", "measure": "cost", "adhocFilters": [{"key": "query_class", "operator": "=", "value": "subagent"}]});
        assert!(all_close(&wide(&state, q).await["value"], &[SUBAGENT_COST]));

        let c = wide(&state, json!({"queryType": "sessions"})).await;
        assert!(all_close(&c["subagent_cost_usd"], &[SUBAGENT_COST]));
        assert!(all_close(&c["subagent_cost_ratio"], &[SUBAGENT_COST / total]));
    }

    #[tokio::test]
    async fn cache_writes_by_lifetime() {
        let (state, _dir) = state_with(&[transcript_run("subagent-2.1.332"), run("tools", "grpc")].concat()).await;
        for (measure, value) in [("cache_creation_5m_tokens", 3120.0), ("cache_creation_1h_tokens", 1700.0)] {
            let c = wide(&state, json!({"queryType": "stat", "measure": measure})).await;
            assert!(all_close(&c["value"], &[value]), "{measure}: {:?}", c["value"]);
        }
        let c = wide(&state, json!({"queryType": "cost_by_model", "source": "events", "format": "table"})).await;
        assert_eq!(c["model"], ["claude-opus-4-8", "claude-opus-5-5", "claude-haiku-5-5"]);
        // 2.1.197 sends no split: null, not 0
        assert_eq!(c["cache_creation_5m_tokens"], [Value::Null, json!(2000), json!(1120)]);
        assert_eq!(c["cache_creation_1h_tokens"], [Value::Null, json!(1200), json!(500)]);
        assert_eq!(c["cache_creation_tokens"], [3584, 3200, 1620]);
    }

    #[tokio::test]
    async fn time_to_first_token_beside_duration() {
        let (state, _dir) = state_with(&[transcript_run("subagent-2.1.332"), run("tools", "grpc")].concat()).await;
        let q = json!({"queryType": "api_latency", "groupBy": "model", "format": "table", "percentiles": [50]});
        let c = wide(&state, q).await;
        assert_eq!(c["model"], ["claude-opus-4-8", "claude-opus-5-5", "claude-haiku-5-5"]);
        // ttft_ms: opus 11 and 5, haiku 5 and 6; 2.1.197 has none
        assert_eq!(c["p50_ttft_ms"], [Value::Null, json!(8.0), json!(5.5)]);
        assert_eq!(c["p50_duration_ms"][1..], [json!(32.5), json!(22.5)]);
        let q = json!({"queryType": "api_latency", "groupBy": "model", "format": "table", "percentiles": [50],
            "source": "spans", "latencies": ["first_content", "ttft"]});
        let c = wide(&state, q).await;
        assert_eq!(c["model"], ["claude-opus-4-8[1m]", "claude-opus-5-5", "claude-haiku-5-5"]);
        // first_content_ms: opus 11 and 5, haiku 8 and 7
        assert_eq!(c["p50_first_content_ms"], [Value::Null, json!(8.0), json!(7.5)]);
        assert_eq!(c["p50_ttft_ms"][1..], [json!(8.0), json!(5.5)]);
        let e = frames(&state, json!({"queryType": "api_latency", "latencies": ["first_content"]}), ctx()).await.unwrap_err();
        assert!(e.contains("\"source\": \"spans\""), "{e}");
    }

    /// The subagent's spans hang under the Agent tool span of the main loop (through its
    /// tool.execution), so the trace view nests them there.
    const AGENT_ID_TAG: &str = r#"{"key":"agent_id","value":"a7d13cc7bcd120c70"}"#;

    #[tokio::test]
    async fn subagent_spans_nest_under_their_agent_tool_span() {
        let (state, _dir) = state_with(&transcript_run("subagent-2.1.332")).await;
        let prompt = "f15cde67-ccb3-403f-b457-96f15c2b6b62";
        let c = wide(&state, json!({"queryType": "trace", "promptId": prompt})).await;
        let text = |name: &str, i: usize| c[name][i].as_str().unwrap_or_default().to_string();
        let parent_of: std::collections::HashMap<String, String> =
            (0..c["spanID"].len()).map(|i| (text("spanID", i), text("parentSpanID", i))).collect();
        let agent_tool = (0..c["spanID"].len())
            .find(|&i| text("operationName", i) == "claude_code.tool" && c["tags"][i].to_string().contains(r#""value":"Agent""#))
            .map(|i| text("spanID", i))
            .expect("an Agent tool span");
        let subagent_spans: Vec<String> =
            (0..c["spanID"].len()).filter(|&i| c["tags"][i].to_string().contains(AGENT_ID_TAG)).map(|i| text("spanID", i)).collect();
        assert_eq!(subagent_spans.len(), 3, "2 llm_request spans and 1 tool span carry the subagent's agent_id");
        for span in subagent_spans {
            let mut ancestors = Vec::new();
            let mut at = span.clone();
            while let Some(parent) = parent_of.get(&at).filter(|p| !p.is_empty()) {
                ancestors.push(parent.clone());
                at = parent.clone();
            }
            assert!(ancestors.contains(&agent_tool), "{span} is not under the Agent tool span: {ancestors:?}");
        }
    }
}
