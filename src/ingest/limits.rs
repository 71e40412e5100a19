//! Per-request limits checked before anything is stored: records per request, attributes per
//! record (and resource, scope), bytes per attribute value. A request over any of them is refused
//! whole with a message naming the limit, the record and the setting that raises it.
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::decode::ExportRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `GF_PLUGIN_MAX_RECORDS_PER_REQUEST`: log records, data points or spans in one export.
    pub records: usize,
    /// `GF_PLUGIN_MAX_ATTRIBUTES`: attributes on one record, resource or scope.
    pub attributes: usize,
    /// `GF_PLUGIN_MAX_ATTRIBUTE_VALUE_BYTES`: one attribute value (strings and bytes, nested
    /// arrays and maps counted whole).
    pub value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Claude Code sends tens of records per export; prompts and tool parameters can be long.
        Limits { records: 50_000, attributes: 256, value_bytes: 1 << 20 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("{count} records in one request exceed the limit of {limit} (GF_PLUGIN_MAX_RECORDS_PER_REQUEST); send smaller batches")]
    TooManyRecords { count: usize, limit: usize },
    #[error("{what} has {count} attributes, over the limit of {limit} (GF_PLUGIN_MAX_ATTRIBUTES); nothing of the request was stored")]
    TooManyAttributes { what: String, count: usize, limit: usize },
    #[error("attribute {key:?} of {what} is {bytes} bytes, over the limit of {limit} (GF_PLUGIN_MAX_ATTRIBUTE_VALUE_BYTES); nothing of the request was stored")]
    ValueTooLarge { what: String, key: String, bytes: usize, limit: usize },
}

/// Bytes of a value's strings and byte arrays, nested values included; stops counting past `cap`.
fn value_bytes(value: Option<&AnyValue>, cap: usize) -> usize {
    let Some(v) = value.and_then(|v| v.value.as_ref()) else { return 0 };
    match v {
        any_value::Value::StringValue(s) => s.len(),
        any_value::Value::BytesValue(b) => b.len(),
        any_value::Value::ArrayValue(a) => {
            let mut total = 0;
            for item in &a.values {
                total += value_bytes(Some(item), cap);
                if total > cap {
                    break;
                }
            }
            total
        }
        any_value::Value::KvlistValue(kv) => {
            let mut total = 0;
            for item in &kv.values {
                total += item.key.len() + value_bytes(item.value.as_ref(), cap);
                if total > cap {
                    break;
                }
            }
            total
        }
        _ => 8,
    }
}

fn check_attributes(limits: &Limits, what: impl Fn() -> String, attrs: &[KeyValue]) -> Result<(), LimitError> {
    if attrs.len() > limits.attributes {
        return Err(LimitError::TooManyAttributes { what: what(), count: attrs.len(), limit: limits.attributes });
    }
    for kv in attrs {
        let bytes = value_bytes(kv.value.as_ref(), limits.value_bytes);
        if bytes > limits.value_bytes {
            return Err(LimitError::ValueTooLarge { what: what(), key: kv.key.clone(), bytes, limit: limits.value_bytes });
        }
    }
    Ok(())
}

/// The attributes a group's resource and scope carry.
fn check_origin(limits: &Limits, i: usize, resource: Option<&Resource>, scope: Option<&InstrumentationScope>) -> Result<(), LimitError> {
    check_attributes(limits, || format!("resource {i}"), resource.map(|r| &r.attributes[..]).unwrap_or(&[]))?;
    check_attributes(limits, || format!("the instrumentation scope of resource {i}"), scope.map(|s| &s.attributes[..]).unwrap_or(&[]))
}

/// Checks a decoded request against `limits`.
pub fn check(request: &ExportRequest, limits: &Limits) -> Result<(), LimitError> {
    let records = match request {
        ExportRequest::Logs(r) => r.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len()).sum(),
        ExportRequest::Traces(r) => r.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum(),
        ExportRequest::Metrics(r) => r
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .filter_map(|m| m.data.as_ref())
            .map(|d| match d {
                Data::Gauge(g) => g.data_points.len(),
                Data::Sum(s) => s.data_points.len(),
                Data::Histogram(h) => h.data_points.len(),
                Data::ExponentialHistogram(h) => h.data_points.len(),
                Data::Summary(s) => s.data_points.len(),
            })
            .sum(),
    };
    if records > limits.records {
        return Err(LimitError::TooManyRecords { count: records, limit: limits.records });
    }
    match request {
        ExportRequest::Logs(r) => {
            for (i, rl) in r.resource_logs.iter().enumerate() {
                for sl in &rl.scope_logs {
                    check_origin(limits, i, rl.resource.as_ref(), sl.scope.as_ref())?;
                    for (j, rec) in sl.log_records.iter().enumerate() {
                        check_attributes(limits, || format!("log record {j} of resource {i}"), &rec.attributes)?;
                    }
                }
            }
        }
        ExportRequest::Traces(r) => {
            for (i, rs) in r.resource_spans.iter().enumerate() {
                for ss in &rs.scope_spans {
                    check_origin(limits, i, rs.resource.as_ref(), ss.scope.as_ref())?;
                    for span in &ss.spans {
                        check_attributes(limits, || format!("span {:?}", span.name), &span.attributes)?;
                        for e in &span.events {
                            check_attributes(limits, || format!("event {:?} of span {:?}", e.name, span.name), &e.attributes)?;
                        }
                    }
                }
            }
        }
        ExportRequest::Metrics(r) => {
            for (i, rm) in r.resource_metrics.iter().enumerate() {
                for sm in &rm.scope_metrics {
                    check_origin(limits, i, rm.resource.as_ref(), sm.scope.as_ref())?;
                    for m in &sm.metrics {
                        let what = || format!("a data point of {:?}", m.name);
                        let point_attributes: Vec<&[KeyValue]> = match m.data.as_ref() {
                            Some(Data::Gauge(g)) => g.data_points.iter().map(|p| &p.attributes[..]).collect(),
                            Some(Data::Sum(s)) => s.data_points.iter().map(|p| &p.attributes[..]).collect(),
                            Some(Data::Histogram(h)) => h.data_points.iter().map(|p| &p.attributes[..]).collect(),
                            Some(Data::ExponentialHistogram(h)) => h.data_points.iter().map(|p| &p.attributes[..]).collect(),
                            Some(Data::Summary(s)) => s.data_points.iter().map(|p| &p.attributes[..]).collect(),
                            None => Vec::new(),
                        };
                        point_attributes.into_iter().try_for_each(|a| check_attributes(limits, what, a))?;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(v) }) }
    }

    fn logs(records: usize, attrs: Vec<KeyValue>) -> ExportRequest {
        let rec = LogRecord { attributes: attrs, ..Default::default() };
        ExportRequest::Logs(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs { log_records: vec![rec; records], ..Default::default() }],
                ..Default::default()
            }],
        })
    }

    #[test]
    fn each_limit_refuses_with_a_message_naming_its_setting() {
        let l = Limits { records: 2, attributes: 3, value_bytes: 10 };
        let small = vec![kv("a", any_value::Value::StringValue("x".into()))];
        assert_eq!(check(&logs(2, small.clone()), &l), Ok(()));
        let e = check(&logs(3, small), &l).unwrap_err();
        assert!(
            matches!(e, LimitError::TooManyRecords { count: 3, limit: 2 }) && e.to_string().contains("GF_PLUGIN_MAX_RECORDS_PER_REQUEST")
        );
        let many: Vec<_> = (0..4).map(|i| kv(&format!("k{i}"), any_value::Value::IntValue(i))).collect();
        let e = check(&logs(1, many), &l).unwrap_err();
        assert!(
            e.to_string().contains("log record 0 of resource 0 has 4 attributes") && e.to_string().contains("GF_PLUGIN_MAX_ATTRIBUTES"),
            "{e}"
        );
        let long = vec![kv("prompt", any_value::Value::StringValue("x".repeat(11)))];
        let e = check(&logs(1, long), &l).unwrap_err();
        assert!(e.to_string().contains("\"prompt\"") && e.to_string().contains("11 bytes"), "{e}");
        // nested values count whole
        let nested = any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
            values: (0..3).map(|_| AnyValue { value: Some(any_value::Value::StringValue("abcd".into())) }).collect(),
        });
        assert!(matches!(check(&logs(1, vec![kv("list", nested)]), &l), Err(LimitError::ValueTooLarge { bytes: 12, .. })));
    }
}
