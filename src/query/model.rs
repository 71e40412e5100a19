//! The typed query model: the JSON a panel or alert rule stores, one variant per `queryType`.
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "queryType", rename_all = "snake_case")]
pub enum Query {
    /// Sessions active in the time range, one row each.
    Sessions(SessionsQuery),
    /// Every event of one session, in order.
    SessionTimeline(SessionTimelineQuery),
    /// Cost per model: a wide time series and a table of totals.
    CostByModel(CostByModelQuery),
    /// Per tool: calls, successes, failures, success rate, duration percentiles, decisions.
    ToolSuccessRate(ToolSuccessRateQuery),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostSource {
    /// `claude_code.cost.usage` / `claude_code.token.usage` metrics (model = configured model).
    #[default]
    Metrics,
    /// `api_request` events (per request; model = API model id).
    Events,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CostByModelQuery {
    #[serde(default)]
    pub source: CostSource,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSuccessRateQuery {}

/// Parses a query's JSON. Grafana sends `queryType` both inside the JSON and beside it; the
/// outer one fills in when the JSON lacks it. Errors name the offending field.
pub fn parse(json: &serde_json::Value, outer_query_type: &str) -> Result<Query, String> {
    let mut json = json.clone();
    if let Some(obj) = json.as_object_mut() {
        let missing = obj.get("queryType").and_then(|v| v.as_str()).is_none_or(str::is_empty);
        if missing && !outer_query_type.is_empty() {
            obj.insert("queryType".into(), outer_query_type.into());
        }
    } else {
        return Err("query must be a JSON object".into());
    }
    serde_json::from_value(json).map_err(|e| format!("invalid query: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_four_query_shapes() {
        assert_eq!(parse(&json!({"queryType": "sessions", "refId": "A"}), "").unwrap(), Query::Sessions(SessionsQuery { limit: 1000 }));
        assert_eq!(
            parse(&json!({"queryType": "session_timeline", "sessionId": "abc"}), "").unwrap(),
            Query::SessionTimeline(SessionTimelineQuery { session_id: "abc".into() })
        );
        assert_eq!(
            parse(&json!({"queryType": "cost_by_model"}), "").unwrap(),
            Query::CostByModel(CostByModelQuery { source: CostSource::Metrics })
        );
        assert_eq!(parse(&json!({}), "tool_success_rate").unwrap(), Query::ToolSuccessRate(ToolSuccessRateQuery {}));
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
    }
}
