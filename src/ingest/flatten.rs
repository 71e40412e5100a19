//! OTLP export requests → store rows. Nothing is dropped: every attribute goes to the JSON
//! columns, the attributes queries need are also lifted into typed columns, and records that
//! cannot be stored (a metric point without a value, a span without ids) are counted as rejected.
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, Exemplar};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status};
use serde_json::{json, Map, Value as Json};

use super::attrs::{any_to_json, attributes_to_map, lift, Attrs};
use crate::store::rows::{Batch, Common, EventRow, MetricRow, Micros, SpanRow, Temporality};
use crate::store::schema::{AttrColumn, EVENT_COLUMNS, METRIC_COLUMNS, SPAN_COLUMNS};

/// Claude Code prefixes every event body with this; the event name is what follows.
const EVENT_BODY_PREFIX: &str = "claude_code.";

fn micros(unix_nano: u64) -> Option<Micros> {
    (unix_nano != 0).then_some((unix_nano / 1_000) as Micros)
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn hex_id(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty() && bytes.iter().any(|b| *b != 0)).then(|| hex::encode(bytes))
}

/// Resource and scope of one `Resource*`/`Scope*` group, shared by its records.
struct Origin {
    resource: String,
    scope_name: Option<String>,
    scope_version: Option<String>,
}

impl Origin {
    fn new(resource: Option<&Resource>, scope: Option<&InstrumentationScope>) -> Self {
        Origin {
            resource: Attrs::from_kvs(resource.map_or(&[][..], |r| &r.attributes)).json(),
            scope_name: scope.and_then(|s| non_empty(&s.name)),
            scope_version: scope.and_then(|s| non_empty(&s.version)),
        }
    }

    /// A record's `Common` part: typed columns lifted from `attrs`, then the rest as JSON
    /// (without `drop`, which another column holds).
    fn common(&self, columns: &[AttrColumn], attrs: &Attrs, drop: Option<&str>) -> Common {
        let lifted = lift(columns, attrs, drop);
        Common {
            typed: lifted.typed,
            lifted: lifted.columns,
            native: lifted.native,
            attributes: lifted.rest,
            resource: self.resource.clone(),
            scope_name: self.scope_name.clone(),
            scope_version: self.scope_version.clone(),
        }
    }
}

pub fn logs(req: &ExportLogsServiceRequest, received_at: Micros) -> Batch {
    let mut batch = Batch::default();
    for rl in &req.resource_logs {
        for sl in &rl.scope_logs {
            let origin = Origin::new(rl.resource.as_ref(), sl.scope.as_ref());
            for rec in &sl.log_records {
                let attrs = Attrs::from_kvs(&rec.attributes);
                let body = match rec.body.as_ref().and_then(|b| b.value.as_ref()) {
                    None => None,
                    Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                    Some(_) => Some(any_to_json(rec.body.as_ref()).to_string()),
                };
                let sent_name = attrs.str("event.name");
                let event_name = sent_name
                    .map(str::to_string)
                    .or_else(|| non_empty(&rec.event_name))
                    .or_else(|| body.as_deref().and_then(|b| b.strip_prefix(EVENT_BODY_PREFIX)).map(str::to_string))
                    .unwrap_or_default();
                // `event.name` as sent is the `event_name` column: stored once
                let event_name_lifted = sent_name == Some(event_name.as_str());
                let observed = micros(rec.observed_time_unix_nano);
                batch.events.push(EventRow {
                    time: micros(rec.time_unix_nano).or(observed).unwrap_or(received_at),
                    observed_time: observed,
                    received_at,
                    event_name,
                    body,
                    severity_number: (rec.severity_number != 0).then_some(rec.severity_number),
                    severity_text: non_empty(&rec.severity_text),
                    trace_id: hex_id(&rec.trace_id),
                    span_id: hex_id(&rec.span_id),
                    flags: (rec.flags != 0).then_some(rec.flags),
                    common: origin.common(EVENT_COLUMNS, &attrs, event_name_lifted.then_some("event.name")),
                    dropped_attributes: rec.dropped_attributes_count,
                    event_name_lifted,
                });
            }
        }
    }
    batch
}

/// The parts every kind of data point shares.
struct PointCommon<'a> {
    attributes: &'a [KeyValue],
    start_time_unix_nano: u64,
    time_unix_nano: u64,
    flags: u32,
    exemplars: &'a [Exemplar],
}

/// The `PointCommon` of any data point type (they share these fields but no trait).
macro_rules! point_common {
    ($dp:expr, $exemplars:expr) => {
        PointCommon {
            attributes: &$dp.attributes,
            start_time_unix_nano: $dp.start_time_unix_nano,
            time_unix_nano: $dp.time_unix_nano,
            flags: $dp.flags,
            exemplars: $exemplars,
        }
    };
}

pub fn metrics(req: &ExportMetricsServiceRequest, received_at: Micros) -> Batch {
    let mut batch = Batch::default();
    for rm in &req.resource_metrics {
        for sm in &rm.scope_metrics {
            let origin = Origin::new(rm.resource.as_ref(), sm.scope.as_ref());
            for m in &sm.metrics {
                let mut push = |p: PointCommon,
                                kind: &'static str,
                                temporality: Option<Temporality>,
                                monotonic: Option<bool>,
                                value: Option<f64>,
                                count: Option<u64>,
                                mut extra: Map<String, Json>| {
                    let Some(time) = micros(p.time_unix_nano) else {
                        batch.reject(1, format!("metric {}: data point without timeUnixNano", m.name));
                        return;
                    };
                    if value.is_none() && kind != "histogram" && kind != "exponential_histogram" {
                        batch.reject(1, format!("metric {}: data point without a value", m.name));
                        return;
                    }
                    if !p.exemplars.is_empty() {
                        extra.insert("exemplars".into(), exemplars_json(p.exemplars));
                    }
                    let attrs = Attrs::from_kvs(p.attributes);
                    // identity from every attribute (the canonical text of the full set, as
                    // files written before attributes were lifted hold it)
                    let all_attributes = attrs.json();
                    let common = origin.common(METRIC_COLUMNS, &attrs, None);
                    let series_key = series_key(&[&m.name, &all_attributes, &common.resource, common.scope_name.as_deref().unwrap_or("")]);
                    let increment = match (kind, temporality) {
                        ("gauge" | "summary", _) => None,
                        (_, Some(Temporality::Cumulative)) => None, // the writer computes it
                        _ => value,
                    };
                    batch.points.push(MetricRow {
                        time,
                        start_time: micros(p.start_time_unix_nano),
                        received_at,
                        metric_name: m.name.clone(),
                        unit: non_empty(&m.unit),
                        description: non_empty(&m.description),
                        kind,
                        temporality,
                        is_monotonic: monotonic,
                        value,
                        increment,
                        count,
                        series_key,
                        common,
                        extra: (!extra.is_empty()).then(|| Json::Object(extra).to_string()),
                        flags: (p.flags != 0).then_some(p.flags),
                    });
                };
                match &m.data {
                    None => batch.reject(1, format!("metric {} has no data", m.name)),
                    Some(metric::Data::Sum(s)) => {
                        let t = Temporality::from_otlp(s.aggregation_temporality);
                        for dp in &s.data_points {
                            let common = point_common!(dp, &dp.exemplars);
                            push(common, "sum", Some(t), Some(s.is_monotonic), number_value(&dp.value), None, Map::new());
                        }
                    }
                    Some(metric::Data::Gauge(g)) => {
                        for dp in &g.data_points {
                            let common = point_common!(dp, &dp.exemplars);
                            push(common, "gauge", None, None, number_value(&dp.value), None, Map::new());
                        }
                    }
                    Some(metric::Data::Histogram(h)) => {
                        let t = Temporality::from_otlp(h.aggregation_temporality);
                        for dp in &h.data_points {
                            let extra = json!({"bucketCounts": dp.bucket_counts, "explicitBounds": dp.explicit_bounds, "min": dp.min, "max": dp.max});
                            let common = point_common!(dp, &dp.exemplars);
                            push(common, "histogram", Some(t), None, dp.sum, Some(dp.count), object(extra));
                        }
                    }
                    Some(metric::Data::ExponentialHistogram(h)) => {
                        let t = Temporality::from_otlp(h.aggregation_temporality);
                        for dp in &h.data_points {
                            let buckets =
                                |b: &Option<opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets>| {
                                    b.as_ref().map(|b| json!({"offset": b.offset, "bucketCounts": b.bucket_counts}))
                                };
                            let extra = json!({"scale": dp.scale, "zeroCount": dp.zero_count, "zeroThreshold": dp.zero_threshold, "positive": buckets(&dp.positive), "negative": buckets(&dp.negative), "min": dp.min, "max": dp.max});
                            let common = point_common!(dp, &dp.exemplars);
                            push(common, "exponential_histogram", Some(t), None, dp.sum, Some(dp.count), object(extra));
                        }
                    }
                    Some(metric::Data::Summary(s)) => {
                        for dp in &s.data_points {
                            let q: Vec<Json> =
                                dp.quantile_values.iter().map(|q| json!({"quantile": q.quantile, "value": q.value})).collect();
                            let common = point_common!(dp, &[]);
                            push(common, "summary", None, None, Some(dp.sum), Some(dp.count), object(json!({"quantiles": q})));
                        }
                    }
                }
            }
        }
    }
    batch
}

fn object(v: Json) -> Map<String, Json> {
    match v {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

fn number_value(v: &Option<number_data_point::Value>) -> Option<f64> {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => Some(*d),
        Some(number_data_point::Value::AsInt(i)) => Some(*i as f64),
        None => None,
    }
}

fn exemplars_json(ex: &[Exemplar]) -> Json {
    use opentelemetry_proto::tonic::metrics::v1::exemplar::Value as EV;
    Json::Array(
        ex.iter()
            .map(|e| {
                let value = match e.value {
                    Some(EV::AsDouble(d)) => json!(d),
                    Some(EV::AsInt(i)) => json!(i),
                    None => Json::Null,
                };
                json!({"timeUnixNano": e.time_unix_nano.to_string(), "value": value, "traceId": hex_id(&e.trace_id), "spanId": hex_id(&e.span_id), "filteredAttributes": attributes_to_map(&e.filtered_attributes)})
            })
            .collect(),
    )
}

/// FNV-1a over the parts, separated: a hash that stays the same across builds and restarts (the
/// writer looks up a cumulative series' previous point by it).
pub fn series_key(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

pub fn traces(req: &ExportTraceServiceRequest, received_at: Micros) -> Batch {
    let mut batch = Batch::default();
    for rs in &req.resource_spans {
        for ss in &rs.scope_spans {
            let origin = Origin::new(rs.resource.as_ref(), ss.scope.as_ref());
            for sp in &ss.spans {
                let (Some(trace_id), Some(span_id)) = (hex_id(&sp.trace_id), hex_id(&sp.span_id)) else {
                    batch.reject(1, format!("span {:?} has an empty traceId or spanId", sp.name));
                    continue;
                };
                let Some(start_time) = micros(sp.start_time_unix_nano) else {
                    batch.reject(1, format!("span {:?} has no startTimeUnixNano", sp.name));
                    continue;
                };
                let attrs = Attrs::from_kvs(&sp.attributes);
                let events: Vec<Json> = sp
                    .events
                    .iter()
                    .map(|e| json!({"timeUnixNano": e.time_unix_nano.to_string(), "name": e.name, "attributes": attributes_to_map(&e.attributes)}))
                    .collect();
                let links: Vec<Json> = sp
                    .links
                    .iter()
                    .map(|l| json!({"traceId": hex_id(&l.trace_id), "spanId": hex_id(&l.span_id), "traceState": l.trace_state, "attributes": attributes_to_map(&l.attributes)}))
                    .collect();
                let status = sp.status.as_ref();
                batch.spans.push(SpanRow {
                    trace_id,
                    span_id,
                    parent_span_id: hex_id(&sp.parent_span_id),
                    name: sp.name.clone(),
                    kind: span::SpanKind::try_from(sp.kind)
                        .ok()
                        .map(|k| k.as_str_name().trim_start_matches("SPAN_KIND_").to_ascii_lowercase()),
                    start_time,
                    end_time: micros(sp.end_time_unix_nano),
                    duration_ms: (sp.end_time_unix_nano >= sp.start_time_unix_nano && sp.end_time_unix_nano != 0)
                        .then(|| (sp.end_time_unix_nano - sp.start_time_unix_nano) as f64 / 1e6),
                    received_at,
                    status: Some(
                        status
                            .and_then(|s| status::StatusCode::try_from(s.code).ok())
                            .unwrap_or(status::StatusCode::Unset)
                            .as_str_name()
                            .trim_start_matches("STATUS_CODE_")
                            .to_ascii_lowercase(),
                    ),
                    status_message: status.and_then(|s| non_empty(&s.message)),
                    trace_state: non_empty(&sp.trace_state),
                    flags: (sp.flags != 0).then_some(sp.flags),
                    common: origin.common(SPAN_COLUMNS, &attrs, None),
                    events: (!events.is_empty()).then(|| Json::Array(events).to_string()),
                    links: (!links.is_empty()).then(|| Json::Array(links).to_string()),
                });
            }
        }
    }
    batch
}
