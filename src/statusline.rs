//! `gpx_claudecode statusline`: Claude Code's `statusLine` command. Claude Code writes a JSON
//! status on its stdin (model, session cost and, on Claude plans, `rate_limits.five_hour` /
//! `seven_day` with the used percentage and reset time); the command records the plan's own
//! figures as metrics (`usage_windows` with `output: limits` graphs them) and prints one line:
//! model, today's cost and the open 5-hour window.
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::{Deserialize, Serialize};

use crate::ingest::Ingest;
use crate::query::plan::RATE_LIMIT_METRIC;

/// The parts of Claude Code's statusline JSON this uses (it sends more).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StatusInput {
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub model: Option<StatusModel>,
    #[serde(default)]
    pub cost: Option<StatusCost>,
    #[serde(default)]
    pub rate_limits: Option<RateLimits>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StatusModel {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StatusCost {
    #[serde(default)]
    pub total_cost_usd: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RateLimits {
    #[serde(default)]
    pub five_hour: Option<RateLimit>,
    #[serde(default)]
    pub seven_day: Option<RateLimit>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RateLimit {
    #[serde(default)]
    pub used_percentage: Option<f64>,
    /// Unix seconds, or an RFC 3339 time.
    #[serde(default)]
    pub resets_at: Option<serde_json::Value>,
}

impl RateLimit {
    fn resets_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.resets_at.as_ref()? {
            serde_json::Value::Number(n) => chrono::DateTime::from_timestamp(n.as_f64()? as i64, 0),
            serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&chrono::Utc))
                .or_else(|| s.parse::<i64>().ok().and_then(|n| chrono::DateTime::from_timestamp(n, 0))),
            _ => None,
        }
    }
}

/// What the store knows for the status line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStatus {
    pub today_cost_usd: f64,
    /// The open 5-hour window of the session's user: its cost and when it closes (RFC 3339).
    pub window_cost_usd: Option<f64>,
    pub window_end: Option<String>,
    /// Rate-limit points recorded from this status.
    pub recorded: usize,
}

/// The plan's figures as an OTLP metrics export: one gauge point per window (`type`).
pub fn limits_export(input: &StatusInput, now: chrono::DateTime<chrono::Utc>) -> ExportMetricsServiceRequest {
    let text = |key: &str, value: &str| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_string())) }),
    };
    let mut points = Vec::new();
    let limits = input.rate_limits.clone().unwrap_or_default();
    for (window, limit) in [("five_hour", limits.five_hour), ("seven_day", limits.seven_day)] {
        let Some(limit) = limit else { continue };
        let Some(used) = limit.used_percentage.filter(|u| u.is_finite()) else { continue };
        let mut attributes = vec![text("type", window)];
        if let Some(s) = &input.session_id {
            attributes.push(text("session.id", s));
        }
        if let Some(r) = limit.resets_at() {
            attributes.push(text("resets_at", &r.to_rfc3339()));
        }
        points.push(NumberDataPoint {
            attributes,
            time_unix_nano: now.timestamp_nanos_opt().unwrap_or(0) as u64,
            value: Some(number_data_point::Value::AsDouble(used)),
            ..Default::default()
        });
    }
    if points.is_empty() {
        return ExportMetricsServiceRequest::default();
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource { attributes: vec![text("service.name", "claude-code")], ..Default::default() }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "gpx_claudecode.statusline".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics: vec![Metric {
                    name: RATE_LIMIT_METRIC.into(),
                    unit: "%".into(),
                    description: "Claude plan usage limit used, as Claude Code's statusline reports it".into(),
                    data: Some(metric::Data::Gauge(Gauge { data_points: points })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Records the status's plan figures and reads today's cost and the open window.
pub async fn record(ingest: &Arc<Ingest>, input: &StatusInput, now: chrono::DateTime<chrono::Utc>) -> Result<StoreStatus, String> {
    use crate::ingest::stats::{Origin, Protocol};
    let export = limits_export(input, now);
    let recorded = export.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics).count();
    if recorded > 0 {
        let request = crate::ingest::decode::ExportRequest::Metrics(export);
        ingest.export(request, Origin { protocol: Protocol::Http, peer: None }).await.map_err(|e| e.to_string())?;
    }
    let store = ingest.store.wait(ingest.settings.wait).await.map_err(|e| e.to_string())?;
    let session = input.session_id.clone();
    let mut status = store
        .read(move |conn| {
            use crate::query::{model, QueryContext, QuerySettings};
            let day = now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
            let ctx = QueryContext { from: day, to: now, interval_ms: 0, max_data_points: 0, limits: Default::default() };
            let settings = QuerySettings::default();
            let run = |q: serde_json::Value, ctx: &QueryContext| {
                let parsed = model::parse(&q, "").map_err(crate::store::StoreError::Rejected)?;
                crate::query::run(conn, &parsed, ctx, &settings).map_err(crate::store::StoreError::from)
            };
            let today = run(serde_json::json!({"queryType": "stat", "measure": "cost", "source": "events"}), &ctx)?;
            let today_cost_usd = today.first().and_then(|f| f.field("value")).and_then(|f| f.number(0)).unwrap_or(0.0);
            // the session's user's open window, else any open one
            let window_ctx = QueryContext { from: now - crate::query::plan::WINDOW, ..ctx };
            let user: Option<String> = match &session {
                Some(s) => conn
                    .query_row(
                        "SELECT any_value(coalesce(user_email, user_account_uuid, user_id)) FROM events WHERE session_id = ? AND event_name = 'api_request'",
                        [s],
                        |r| r.get(0),
                    )
                    .ok()
                    .flatten(),
                None => None,
            };
            let windows = run(serde_json::json!({"queryType": "usage_windows"}), &window_ctx)?;
            let mut status = StoreStatus { today_cost_usd, ..StoreStatus::default() };
            if let Some(f) = windows.first() {
                let (users, states, costs, ends) = (f.field("user"), f.field("state"), f.field("cost_usd"), f.field("window_end"));
                for i in 0..f.rows() {
                    let open = states.and_then(|s| s.text(i)) == Some("open");
                    let mine = user.is_none() || users.and_then(|u| u.text(i)) == user.as_deref();
                    if open && mine {
                        status.window_cost_usd = costs.and_then(|c| c.number(i));
                        status.window_end = ends.and_then(|e| e.time_ns(i)).map(|ns| chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339());
                        break;
                    }
                }
            }
            Ok(status)
        })
        .await
        .map_err(|e| e.to_string())?;
    status.recorded = recorded;
    Ok(status)
}

/// The one line Claude Code shows.
pub fn line(input: &StatusInput, status: Option<&StoreStatus>, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut parts = Vec::new();
    if let Some(m) = input.model.as_ref().and_then(|m| m.display_name.clone().or(m.id.clone())) {
        parts.push(m);
    }
    if let Some(c) = input.cost.as_ref().and_then(|c| c.total_cost_usd) {
        parts.push(format!("session ${c:.2}"));
    }
    if let Some(s) = status {
        parts.push(format!("today ${:.2}", s.today_cost_usd));
        if let (Some(cost), Some(end)) =
            (s.window_cost_usd, s.window_end.as_deref().and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok()))
        {
            let left = (end.with_timezone(&chrono::Utc) - now).num_minutes().max(0);
            parts.push(format!("5h window ${cost:.2}, {}h{:02}m left", left / 60, left % 60));
        }
    }
    let limits = input.rate_limits.clone().unwrap_or_default();
    for (label, limit) in [("5h", limits.five_hour), ("7d", limits.seven_day)] {
        if let Some(used) = limit.as_ref().and_then(|l| l.used_percentage) {
            let reset =
                limit.as_ref().and_then(RateLimit::resets_at).map(|r| format!(" (resets {})", r.format("%H:%M UTC"))).unwrap_or_default();
            parts.push(format!("{label} limit {used:.0}%{reset}"));
        }
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status as Claude Code documents it, with a plan's rate limits.
    pub const STATUS: &str = r#"{"hook_event_name":"Status","session_id":"6fa859a7-0176-4ea5-a4a8-0e74173978d7","transcript_path":"/tmp/t.jsonl","cwd":"/work",
        "model":{"id":"claude-opus-5-5","display_name":"Opus 5.5"},"workspace":{"current_dir":"/work","project_dir":"/work"},"version":"2.1.332",
        "output_style":{"name":"default"},"cost":{"total_cost_usd":0.0223026,"total_duration_ms":642,"total_api_duration_ms":117,"total_lines_added":0,"total_lines_removed":0},
        "exceeds_200k_tokens":false,"rate_limits":{"five_hour":{"used_percentage":42.5,"resets_at":1796122800},"seven_day":{"used_percentage":12,"resets_at":"2026-12-04T00:00:00Z"}}}"#;

    #[test]
    fn the_line_and_the_export_carry_the_plans_own_figures() {
        let input: StatusInput = serde_json::from_str(STATUS).unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let export = limits_export(&input, now);
        let points = match &export.resource_metrics[0].scope_metrics[0].metrics[0].data {
            Some(metric::Data::Gauge(g)) => g.data_points.clone(),
            _ => panic!("a gauge"),
        };
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].value, Some(number_data_point::Value::AsDouble(42.5)));
        let status = StoreStatus {
            today_cost_usd: 1.5,
            window_cost_usd: Some(0.25),
            window_end: Some("2026-12-01T09:30:00+00:00".into()),
            recorded: 2,
        };
        assert_eq!(
            line(&input, Some(&status), now),
            "Opus 5.5 · session $0.02 · today $1.50 · 5h window $0.25, 1h30m left · 5h limit 42% (resets 11:00 UTC) · 7d limit 12% (resets 00:00 UTC)"
        );
        assert_eq!(limits_export(&StatusInput::default(), now), ExportMetricsServiceRequest::default());
    }
}
