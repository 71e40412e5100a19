//! `gpx_claudecode export --session ID`: one session's events, metric points and spans as they
//! were received — OTLP/JSON (one export request per signal and line, the OpenTelemetry
//! Collector's file format, which any OTLP/HTTP receiver takes back, this one included), JSON
//! lines or CSV. Rows are read from the `*_full` views, which hold every attribute as sent.
use std::collections::HashMap;

use duckdb::Connection;
use serde_json::{json, Map, Value as Json};

/// What the export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    /// One OTLP/JSON export request per signal, a line each (logs, metrics, traces).
    #[default]
    OtlpJson,
    /// One JSON object per record.
    Jsonl,
    /// One row per record; attributes and resource as JSON.
    Csv,
}

/// Which signals an export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExportSignal {
    Logs,
    Metrics,
    Traces,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no session {0:?} in the store: `gpx_claudecode report sessions` lists the sessions")]
    UnknownSession(String),
    #[error("session {0:?} has no {1} in the store (its other signals export without --signal)")]
    NoneOfSignals(String, String),
    #[error("reading the session: {0}")]
    Store(#[from] duckdb::Error),
    #[error("writing CSV: {0}")]
    Csv(String),
}

/// One stored record, whatever its signal.
struct Record {
    signal: ExportSignal,
    /// ns since the epoch
    time_ns: i64,
    name: String,
    attributes: Map<String, Json>,
    resource: Map<String, Json>,
    scope: (Option<String>, Option<String>),
    /// The signal's own fields, in OTLP/JSON form (body, severity; value, kind; ids, status).
    own: Map<String, Json>,
}

fn object(text: Option<String>) -> Map<String, Json> {
    match text.and_then(|t| serde_json::from_str::<Json>(&t).ok()) {
        Some(Json::Object(m)) => m,
        _ => Map::new(),
    }
}

fn nanos(us: Option<i64>) -> Option<i64> {
    us.map(|u| u.saturating_mul(1000))
}

fn read_events(conn: &Connection, session: &str) -> Result<Vec<Record>, duckdb::Error> {
    let mut stmt = conn.prepare(
        "SELECT epoch_us(time), epoch_us(observed_time), event_name, body, severity_number, severity_text, trace_id, span_id, flags,
            CAST(attributes AS VARCHAR), CAST(resource AS VARCHAR), scope_name, scope_version
         FROM events_full WHERE session_id = ? ORDER BY time, event_name, CAST(attributes AS VARCHAR)",
    )?;
    let rows = stmt.query_map([session], |r| {
        let mut own = Map::new();
        if let Some(ot) = nanos(r.get::<_, Option<i64>>(1)?) {
            own.insert("observedTimeUnixNano".into(), json!(ot.to_string()));
        }
        if let Some(body) = r.get::<_, Option<String>>(3)? {
            own.insert("body".into(), json!({"stringValue": body}));
        }
        if let Some(n) = r.get::<_, Option<i32>>(4)? {
            own.insert("severityNumber".into(), json!(n));
        }
        if let Some(t) = r.get::<_, Option<String>>(5)? {
            own.insert("severityText".into(), json!(t));
        }
        for (i, key) in [(6, "traceId"), (7, "spanId")] {
            if let Some(id) = r.get::<_, Option<String>>(i)? {
                own.insert(key.into(), json!(id));
            }
        }
        if let Some(f) = r.get::<_, Option<u32>>(8)? {
            own.insert("flags".into(), json!(f));
        }
        Ok(Record {
            signal: ExportSignal::Logs,
            time_ns: nanos(r.get(0)?).unwrap_or(0),
            name: r.get(2)?,
            attributes: object(r.get(9)?),
            resource: object(r.get(10)?),
            scope: (r.get(11)?, r.get(12)?),
            own,
        })
    })?;
    rows.collect()
}

fn read_points(conn: &Connection, session: &str) -> Result<Vec<Record>, duckdb::Error> {
    let mut stmt = conn.prepare(
        "SELECT epoch_us(time), epoch_us(start_time), metric_name, unit, description, kind, temporality, is_monotonic, value, count,
            CAST(extra AS VARCHAR), CAST(attributes AS VARCHAR), CAST(resource AS VARCHAR), scope_name, scope_version, flags
         FROM metric_points_full WHERE session_id = ? ORDER BY time, metric_name, CAST(attributes AS VARCHAR)",
    )?;
    let rows = stmt.query_map([session], |r| {
        let mut own = Map::new();
        let put = |own: &mut Map<String, Json>, k: &str, v: Json| {
            if !v.is_null() {
                own.insert(k.into(), v);
            }
        };
        put(&mut own, "startTimeUnixNano", json!(nanos(r.get(1)?).map(|n| n.to_string())));
        put(&mut own, "unit", json!(r.get::<_, Option<String>>(3)?));
        put(&mut own, "description", json!(r.get::<_, Option<String>>(4)?));
        put(&mut own, "kind", json!(r.get::<_, String>(5)?));
        put(&mut own, "temporality", json!(r.get::<_, Option<String>>(6)?));
        put(&mut own, "isMonotonic", json!(r.get::<_, Option<bool>>(7)?));
        put(&mut own, "value", json!(r.get::<_, Option<f64>>(8)?));
        put(&mut own, "count", json!(r.get::<_, Option<u64>>(9)?));
        put(&mut own, "extra", Json::Object(object(r.get(10)?)));
        put(&mut own, "flags", json!(r.get::<_, Option<u32>>(15)?));
        Ok(Record {
            signal: ExportSignal::Metrics,
            time_ns: nanos(r.get(0)?).unwrap_or(0),
            name: r.get(2)?,
            attributes: object(r.get(11)?),
            resource: object(r.get(12)?),
            scope: (r.get(13)?, r.get(14)?),
            own,
        })
    })?;
    rows.collect()
}

fn read_spans(conn: &Connection, session: &str) -> Result<Vec<Record>, duckdb::Error> {
    // a trace's spans that do not name the session themselves belong to it too
    let mut stmt = conn.prepare(
        "SELECT epoch_us(start_time), epoch_us(end_time), name, trace_id, span_id, parent_span_id, kind, status, status_message, trace_state, flags,
            CAST(events AS VARCHAR), CAST(links AS VARCHAR), CAST(attributes AS VARCHAR), CAST(resource AS VARCHAR), scope_name, scope_version
         FROM spans_full WHERE session_id = $1 OR trace_id IN (SELECT trace_id FROM spans WHERE session_id = $1) ORDER BY start_time, span_id",
    )?;
    let rows = stmt.query_map([session], |r| {
        let mut own = Map::new();
        own.insert("traceId".into(), json!(r.get::<_, String>(3)?));
        own.insert("spanId".into(), json!(r.get::<_, String>(4)?));
        if let Some(p) = r.get::<_, Option<String>>(5)? {
            own.insert("parentSpanId".into(), json!(p));
        }
        let kind = match r.get::<_, Option<String>>(6)?.as_deref() {
            Some("internal") => 1,
            Some("server") => 2,
            Some("client") => 3,
            Some("producer") => 4,
            Some("consumer") => 5,
            _ => 0,
        };
        own.insert("kind".into(), json!(kind));
        if let Some(end) = nanos(r.get(1)?) {
            own.insert("endTimeUnixNano".into(), json!(end.to_string()));
        }
        let code = match r.get::<_, Option<String>>(7)?.as_deref() {
            Some("ok") => 1,
            Some("error") => 2,
            _ => 0,
        };
        let mut status = json!({"code": code});
        if let Some(m) = r.get::<_, Option<String>>(8)? {
            status["message"] = json!(m);
        }
        own.insert("status".into(), status);
        if let Some(ts) = r.get::<_, Option<String>>(9)? {
            own.insert("traceState".into(), json!(ts));
        }
        if let Some(f) = r.get::<_, Option<u32>>(10)? {
            own.insert("flags".into(), json!(f));
        }
        // stored with attributes as objects; OTLP wants key-value lists
        let with_kv = |text: Option<String>| -> Json {
            let list: Vec<Json> = text.and_then(|t| serde_json::from_str::<Vec<Json>>(&t).ok()).unwrap_or_default();
            Json::Array(
                list.into_iter()
                    .map(|mut e| {
                        if let Some(Json::Object(a)) = e.get("attributes").cloned() {
                            e["attributes"] = key_values(&a);
                        }
                        e
                    })
                    .collect(),
            )
        };
        own.insert("events".into(), with_kv(r.get(11)?));
        own.insert("links".into(), with_kv(r.get(12)?));
        Ok(Record {
            signal: ExportSignal::Traces,
            time_ns: nanos(r.get(0)?).unwrap_or(0),
            name: r.get(2)?,
            attributes: object(r.get(13)?),
            resource: object(r.get(14)?),
            scope: (r.get(15)?, r.get(16)?),
            own,
        })
    })?;
    rows.collect()
}

/// A JSON value as an OTLP `AnyValue` (int64 as a string, as OTLP/JSON wants).
fn any_value(v: &Json) -> Json {
    match v {
        Json::String(s) => json!({"stringValue": s}),
        Json::Bool(b) => json!({"boolValue": b}),
        Json::Number(n) if n.is_i64() || n.is_u64() => json!({"intValue": n.to_string()}),
        Json::Number(n) => json!({"doubleValue": n.as_f64()}),
        Json::Array(a) => json!({"arrayValue": {"values": a.iter().map(any_value).collect::<Vec<_>>()}}),
        Json::Object(o) => json!({"kvlistValue": {"values": key_values(o)}}),
        Json::Null => json!({}),
    }
}

fn key_values(m: &Map<String, Json>) -> Json {
    Json::Array(m.iter().map(|(k, v)| json!({"key": k, "value": any_value(v)})).collect())
}

/// Records grouped by resource and scope, in first-seen order.
fn by_origin(records: &[&Record]) -> Vec<(Json, Json, Vec<usize>)> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<(Json, Json, Vec<usize>)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let resource = Json::Object(r.resource.clone());
        let key = format!("{resource}\u{0}{:?}", r.scope);
        let slot = *index.entry(key).or_insert_with(|| {
            let mut scope = Map::new();
            if let Some(n) = &r.scope.0 {
                scope.insert("name".into(), json!(n));
            }
            if let Some(v) = &r.scope.1 {
                scope.insert("version".into(), json!(v));
            }
            groups.push((json!({"attributes": key_values(&r.resource)}), Json::Object(scope), Vec::new()));
            groups.len() - 1
        });
        groups[slot].2.push(i);
    }
    groups
}

fn otlp_logs(records: &[&Record]) -> Json {
    let resource_logs: Vec<Json> = by_origin(records)
        .into_iter()
        .map(|(resource, scope, rows)| {
            let logs: Vec<Json> = rows
                .iter()
                .map(|&i| {
                    let r = records[i];
                    let mut rec = r.own.clone();
                    rec.insert("timeUnixNano".into(), json!(r.time_ns.to_string()));
                    rec.insert("attributes".into(), key_values(&r.attributes));
                    Json::Object(rec)
                })
                .collect();
            json!({"resource": resource, "scopeLogs": [{"scope": scope, "logRecords": logs}]})
        })
        .collect();
    json!({ "resourceLogs": resource_logs })
}

fn otlp_metrics(records: &[&Record]) -> Json {
    let resource_metrics: Vec<Json> = by_origin(records)
        .into_iter()
        .map(|(resource, scope, rows)| {
            // one metric per name and shape, its points in order
            let mut metrics: Vec<(String, Json)> = Vec::new();
            for &i in &rows {
                let r = records[i];
                let o = &r.own;
                let shape = format!("{}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}", r.name, o.get("kind"), o.get("temporality"), o.get("isMonotonic"), o.get("unit"));
                let mut point = Map::new();
                point.insert("attributes".into(), key_values(&r.attributes));
                if let Some(s) = o.get("startTimeUnixNano") {
                    point.insert("startTimeUnixNano".into(), s.clone());
                }
                point.insert("timeUnixNano".into(), json!(r.time_ns.to_string()));
                if let Some(f) = o.get("flags") {
                    point.insert("flags".into(), f.clone());
                }
                let kind = o.get("kind").and_then(Json::as_str).unwrap_or("gauge");
                let temporality = match o.get("temporality").and_then(Json::as_str) {
                    Some("cumulative") => 2,
                    _ => 1,
                };
                match kind {
                    "histogram" => {
                        let extra = o.get("extra").cloned().unwrap_or_default();
                        point.insert("count".into(), json!(o.get("count").and_then(Json::as_u64).unwrap_or(0).to_string()));
                        if let Some(v) = o.get("value") {
                            point.insert("sum".into(), v.clone());
                        }
                        let counts: Vec<String> =
                            extra["bucketCounts"].as_array().map(|a| a.iter().map(|c| c.to_string().trim_matches('"').to_string()).collect()).unwrap_or_default();
                        point.insert("bucketCounts".into(), json!(counts));
                        point.insert("explicitBounds".into(), extra["explicitBounds"].clone());
                        for k in ["min", "max"] {
                            if !extra[k].is_null() {
                                point.insert(k.into(), extra[k].clone());
                            }
                        }
                    }
                    _ => {
                        point.insert("asDouble".into(), o.get("value").cloned().unwrap_or(json!(0.0)));
                    }
                }
                let slot = match metrics.iter().position(|(s, _)| *s == shape) {
                    Some(s) => s,
                    None => {
                        let mut m = Map::new();
                        m.insert("name".into(), json!(r.name));
                        for k in ["unit", "description"] {
                            if let Some(v) = o.get(k) {
                                m.insert(k.into(), v.clone());
                            }
                        }
                        let data = match kind {
                            "sum" => json!({"aggregationTemporality": temporality, "isMonotonic": o.get("isMonotonic").cloned().unwrap_or(json!(false)), "dataPoints": []}),
                            "histogram" => json!({"aggregationTemporality": temporality, "dataPoints": []}),
                            _ => json!({"dataPoints": []}),
                        };
                        m.insert(if kind == "sum" || kind == "histogram" { kind.into() } else { "gauge".into() }, data);
                        metrics.push((shape, Json::Object(m)));
                        metrics.len() - 1
                    }
                };
                let m = &mut metrics[slot].1;
                let key = if kind == "sum" || kind == "histogram" { kind } else { "gauge" };
                if let Some(points) = m[key]["dataPoints"].as_array_mut() {
                    points.push(Json::Object(point));
                }
            }
            let metrics: Vec<Json> = metrics.into_iter().map(|(_, m)| m).collect();
            json!({"resource": resource, "scopeMetrics": [{"scope": scope, "metrics": metrics}]})
        })
        .collect();
    json!({ "resourceMetrics": resource_metrics })
}

fn otlp_traces(records: &[&Record]) -> Json {
    let resource_spans: Vec<Json> = by_origin(records)
        .into_iter()
        .map(|(resource, scope, rows)| {
            let spans: Vec<Json> = rows
                .iter()
                .map(|&i| {
                    let r = records[i];
                    let mut span = r.own.clone();
                    span.insert("name".into(), json!(r.name));
                    span.insert("startTimeUnixNano".into(), json!(r.time_ns.to_string()));
                    span.insert("attributes".into(), key_values(&r.attributes));
                    Json::Object(span)
                })
                .collect();
            json!({"resource": resource, "scopeSpans": [{"scope": scope, "spans": spans}]})
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

/// How many records of each signal an export holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExportCounts {
    pub events: usize,
    pub metric_points: usize,
    pub spans: usize,
}

/// The session's records of `signals` (all when empty) as `format`.
pub fn session(
    conn: &Connection,
    session: &str,
    format: ExportFormat,
    signals: &[ExportSignal],
) -> Result<(String, ExportCounts), ExportError> {
    let wanted = |s: ExportSignal| signals.is_empty() || signals.contains(&s);
    let mut records = Vec::new();
    if wanted(ExportSignal::Logs) {
        records.extend(read_events(conn, session)?);
    }
    if wanted(ExportSignal::Metrics) {
        records.extend(read_points(conn, session)?);
    }
    if wanted(ExportSignal::Traces) {
        records.extend(read_spans(conn, session)?);
    }
    let count = |s: ExportSignal| records.iter().filter(|r| r.signal == s).count();
    let counts =
        ExportCounts { events: count(ExportSignal::Logs), metric_points: count(ExportSignal::Metrics), spans: count(ExportSignal::Traces) };
    if records.is_empty() {
        if signals.is_empty() {
            return Err(ExportError::UnknownSession(session.to_string()));
        }
        let names: Vec<&str> = signals.iter().map(|s| signal_name(*s)).collect();
        return Err(ExportError::NoneOfSignals(session.to_string(), format!("{} records", names.join(" or "))));
    }
    let of = |s: ExportSignal| records.iter().filter(|r| r.signal == s).collect::<Vec<_>>();
    let text = match format {
        ExportFormat::OtlpJson => {
            let mut out = String::new();
            for (signal, build) in [
                (ExportSignal::Logs, otlp_logs as fn(&[&Record]) -> Json),
                (ExportSignal::Metrics, otlp_metrics),
                (ExportSignal::Traces, otlp_traces),
            ] {
                let rs = of(signal);
                if !rs.is_empty() {
                    out.push_str(&build(&rs).to_string());
                    out.push('\n');
                }
            }
            out
        }
        ExportFormat::Jsonl => in_time_order(&records).iter().map(|r| flat(r).to_string() + "\n").collect(),
        ExportFormat::Csv => csv(&records)?,
    };
    Ok((text, counts))
}

/// Records of all signals by time; the same for every copy of the data (ties by signal, then
/// as each signal was read).
fn in_time_order(records: &[Record]) -> Vec<&Record> {
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by_key(|r| (r.time_ns, r.signal as u8));
    sorted
}

fn signal_name(s: ExportSignal) -> &'static str {
    match s {
        ExportSignal::Logs => "log",
        ExportSignal::Metrics => "metric",
        ExportSignal::Traces => "span",
    }
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A record as one flat JSON object (JSON lines).
fn flat(r: &Record) -> Json {
    let mut o = Map::new();
    o.insert("signal".into(), json!(signal_name(r.signal)));
    o.insert("time".into(), json!(rfc3339(r.time_ns)));
    o.insert("name".into(), json!(r.name));
    for (k, v) in &r.own {
        o.insert(k.clone(), v.clone());
    }
    o.insert("attributes".into(), Json::Object(r.attributes.clone()));
    o.insert("resource".into(), Json::Object(r.resource.clone()));
    Json::Object(o)
}

fn csv(records: &[Record]) -> Result<String, ExportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| ExportError::Csv(e.to_string());
    w.write_record(["signal", "time", "name", "session_id", "value", "trace_id", "span_id", "attributes", "resource"]).map_err(err)?;
    for r in in_time_order(records) {
        let text = |v: Option<&Json>| match v {
            Some(Json::String(s)) => s.clone(),
            Some(Json::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let value = match r.signal {
            ExportSignal::Logs => text(r.own.get("body").and_then(|b| b.get("stringValue"))),
            ExportSignal::Metrics => text(r.own.get("value")),
            ExportSignal::Traces => text(r.own.get("status").and_then(|s| s.get("code"))),
        };
        w.write_record([
            signal_name(r.signal).to_string(),
            rfc3339(r.time_ns),
            r.name.clone(),
            text(r.attributes.get("session.id")),
            value,
            text(r.own.get("traceId")),
            text(r.own.get("spanId")),
            Json::Object(r.attributes.clone()).to_string(),
            Json::Object(r.resource.clone()).to_string(),
        ])
        .map_err(err)?;
    }
    let bytes = w.into_inner().map_err(|e| ExportError::Csv(e.to_string()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
