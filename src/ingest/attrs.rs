//! OTLP attribute values: to JSON (kept verbatim in the `attributes`/`resource` columns) and
//! coerced to the typed columns.
use duckdb::types::Value;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use serde_json::{Map, Number, Value as Json};

use crate::store::schema::{AttrColumn, ColumnKind};

/// An `AnyValue` as JSON: strings, numbers and booleans as themselves, arrays and key-value lists
/// as arrays and objects, bytes as lowercase hex, an empty value as null.
pub fn any_to_json(value: Option<&AnyValue>) -> Json {
    let Some(inner) = value.and_then(|v| v.value.as_ref()) else {
        return Json::Null;
    };
    match inner {
        any_value::Value::StringValue(s) => Json::String(s.clone()),
        any_value::Value::BoolValue(b) => Json::Bool(*b),
        any_value::Value::IntValue(i) => Json::Number((*i).into()),
        // JSON has no NaN/Infinity: keep them as their names rather than dropping the value.
        any_value::Value::DoubleValue(d) => Number::from_f64(*d).map(Json::Number).unwrap_or_else(|| Json::String(d.to_string())),
        any_value::Value::ArrayValue(a) => Json::Array(a.values.iter().map(|v| any_to_json(Some(v))).collect()),
        any_value::Value::KvlistValue(kv) => Json::Object(attributes_to_map(&kv.values)),
        any_value::Value::BytesValue(b) => Json::String(hex::encode(b)),
    }
}

/// Key-value list as a JSON object. Keys are sorted (serde_json's map is ordered), which makes the
/// text canonical: equal attribute sets give equal strings (used for metric series identity).
/// A repeated key keeps its last value, as OTLP receivers conventionally do.
pub fn attributes_to_map(attrs: &[KeyValue]) -> Map<String, Json> {
    attrs.iter().map(|kv| (kv.key.clone(), any_to_json(kv.value.as_ref()))).collect()
}

/// One attribute value as lifting and the JSON writer see it, borrowed from either an OTLP
/// `AnyValue` or a JSON value, so both give the same columns and the same JSON text.
#[derive(Clone, Copy, Debug)]
enum Attr<'a> {
    Null,
    Str(&'a str),
    Int(i64),
    /// Finite: a non-finite double is written as its name, a string (see `any_to_json`).
    Double(f64),
    Bool(bool),
    /// Arrays, key-value lists, bytes and non-finite doubles: through their JSON form.
    Any(&'a AnyValue),
    /// JSON arrays, objects and integers beyond `i64`.
    Json(&'a Json),
}

impl<'a> Attr<'a> {
    fn from_any(value: Option<&'a AnyValue>) -> Attr<'a> {
        let Some(v) = value else { return Attr::Null };
        match &v.value {
            None => Attr::Null,
            Some(any_value::Value::StringValue(s)) => Attr::Str(s),
            Some(any_value::Value::IntValue(i)) => Attr::Int(*i),
            Some(any_value::Value::BoolValue(b)) => Attr::Bool(*b),
            Some(any_value::Value::DoubleValue(d)) if d.is_finite() => Attr::Double(*d),
            Some(_) => Attr::Any(v),
        }
    }

    fn from_json(value: &'a Json) -> Attr<'a> {
        match value {
            Json::Null => Attr::Null,
            Json::String(s) => Attr::Str(s),
            Json::Bool(b) => Attr::Bool(*b),
            Json::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) if !n.is_f64() => Attr::Int(i),
                (_, Some(f)) if n.is_f64() => Attr::Double(f),
                _ => Attr::Json(value),
            },
            _ => Attr::Json(value),
        }
    }

    /// Runs `f` on the scalar view of a value held as an `AnyValue` (its JSON form).
    fn resolved<T>(self, f: impl FnOnce(Attr<'_>) -> T) -> T {
        match self {
            Attr::Any(v) => {
                let json = any_to_json(Some(v));
                f(Attr::from_json(&json))
            }
            other => f(other),
        }
    }

    /// Appends the value's JSON text as serde_json writes it.
    fn write_json(self, out: &mut Vec<u8>) {
        // writing to a Vec cannot fail, and these values all serialize
        let _ = match self {
            Attr::Null => {
                out.extend_from_slice(b"null");
                Ok(())
            }
            Attr::Str(s) => serde_json::to_writer(&mut *out, s),
            Attr::Int(i) => serde_json::to_writer(&mut *out, &i),
            Attr::Double(d) => serde_json::to_writer(&mut *out, &d),
            Attr::Bool(b) => serde_json::to_writer(&mut *out, &b),
            Attr::Any(v) => serde_json::to_writer(&mut *out, &any_to_json(Some(v))),
            Attr::Json(j) => serde_json::to_writer(&mut *out, j),
        };
    }

    fn as_f64(self) -> Option<f64> {
        match self {
            Attr::Int(i) => Some(i as f64),
            Attr::Double(d) => Some(d),
            Attr::Str(s) => s.trim().parse::<f64>().ok(),
            Attr::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            Attr::Json(j) => j.as_f64(),
            Attr::Null | Attr::Any(_) => None,
        }
    }

    fn is_null(self) -> bool {
        matches!(self, Attr::Null)
    }
}

/// A record's attributes sorted by key, a repeated key keeping its last value (as
/// `attributes_to_map`): the order of the canonical JSON text.
pub struct Attrs<'a> {
    entries: Vec<(&'a str, Attr<'a>)>,
}

impl<'a> Attrs<'a> {
    pub fn from_kvs(kvs: &'a [KeyValue]) -> Attrs<'a> {
        let mut all: Vec<(&str, Attr)> = kvs.iter().map(|kv| (kv.key.as_str(), Attr::from_any(kv.value.as_ref()))).collect();
        // stable: of a repeated key the entries keep their order, and the last one stays
        all.sort_by(|a, b| a.0.cmp(b.0));
        let mut entries: Vec<(&str, Attr)> = Vec::with_capacity(all.len());
        for e in all {
            match entries.last_mut() {
                Some(last) if last.0 == e.0 => *last = e,
                _ => entries.push(e),
            }
        }
        Attrs { entries }
    }

    pub fn from_map(map: &'a Map<String, Json>) -> Attrs<'a> {
        Attrs { entries: map.iter().map(|(k, v)| (k.as_str(), Attr::from_json(v))).collect() }
    }

    fn get(&self, key: &str) -> Option<Attr<'a>> {
        self.entries.binary_search_by(|e| e.0.cmp(key)).ok().map(|i| self.entries[i].1)
    }

    /// The attribute's value if it is a string.
    pub fn str(&self, key: &str) -> Option<&'a str> {
        match self.get(key) {
            Some(Attr::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The canonical JSON object of every attribute (the text `attributes_to_map` gives).
    pub fn json(&self) -> String {
        self.json_without(|_| false)
    }

    fn json_without(&self, skip: impl Fn(usize) -> bool) -> String {
        let mut out = Vec::with_capacity(16 * self.entries.len() + 2);
        out.push(b'{');
        for (_, (key, value)) in self.entries.iter().enumerate().filter(|(i, _)| !skip(*i)) {
            if out.len() > 1 {
                out.push(b',');
            }
            Attr::Str(key).write_json(&mut out);
            out.push(b':');
            value.write_json(&mut out);
        }
        out.push(b'}');
        // serde_json writes UTF-8
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// What `lift` gives: the typed column values, which of them hold an attribute taken out of the
/// JSON (`columns`, bit `i` for column `i`) and which of those were sent as JSON numbers or
/// booleans (`native`), and the JSON text of the attributes left.
#[derive(Debug)]
pub struct Lifted {
    pub typed: Vec<Value>,
    pub columns: u64,
    pub native: u64,
    pub rest: String,
}

/// Typed column values for `columns`, and the attributes left for the `attributes` JSON: every
/// attribute except those a single-key text, integer, boolean or timestamp column holds exactly
/// as sent (a string that reads back unchanged from the column, or an integer or boolean sent
/// as such), and except `drop` (a key another column holds). `schema::full_attributes_sql`
/// puts those back, so nothing is lost while each value is stored once.
pub fn lift(columns: &[AttrColumn], attrs: &Attrs, drop: Option<&str>) -> Lifted {
    let mut typed = Vec::with_capacity(columns.len());
    let mut lifted = vec![false; attrs.entries.len()];
    let (mut taken, mut native) = (0u64, 0u64);
    for (i, c) in columns.iter().enumerate() {
        let found = c.keys.iter().find_map(|k| attrs.get(k).filter(|v| !v.is_null()));
        let value = found.map_or(Value::Null, |v| coerce(v, c.kind));
        if c.liftable() && i < 64 {
            if let Some(at) = found.and_then(|_| attrs.entries.binary_search_by(|e| e.0.cmp(c.keys[0])).ok()) {
                let (exact, as_native) = exactly_as_sent(&value, attrs.entries[at].1);
                if exact {
                    lifted[at] = true;
                    taken |= 1 << i;
                    if as_native {
                        native |= 1 << i;
                    }
                }
            }
        }
        typed.push(value);
    }
    if let Some(key) = drop {
        if let Ok(at) = attrs.entries.binary_search_by(|e| e.0.cmp(key)) {
            lifted[at] = true;
        }
    }
    Lifted { typed, columns: taken, native, rest: attrs.json_without(|i| lifted[i]) }
}

/// Whether a typed column value reads back as the attribute was sent, and whether it was sent as
/// a JSON number or boolean (rather than a string).
fn exactly_as_sent(value: &Value, sent: Attr) -> (bool, bool) {
    sent.resolved(|sent| match (value, sent) {
        (Value::Text(t), Attr::Str(s)) => (t == s, false),
        (Value::BigInt(i), Attr::Str(s)) => (i.to_string() == s, false),
        (Value::BigInt(i), Attr::Int(n)) => (n == *i, true),
        (Value::Boolean(b), Attr::Str(s)) => (b.to_string() == s, false),
        (Value::Boolean(b), Attr::Bool(x)) => (*b == x, true),
        (Value::Timestamp(_, us), Attr::Str(s)) => (format_timestamp(*us).as_deref() == Some(s), false),
        _ => (false, false),
    })
}

/// A timestamp column's value as Claude Code writes `event.timestamp` (and as the `*_full`
/// views give it back).
fn format_timestamp(us: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// Coerces one attribute value to a column kind; a value that does not fit is NULL in the typed
/// column (it stays in the `attributes` JSON).
fn coerce(value: Attr, kind: ColumnKind) -> Value {
    value.resolved(|value| match kind {
        ColumnKind::Text => match value {
            Attr::Null => Value::Null,
            Attr::Str(s) => Value::Text(s.to_string()),
            other => {
                let mut out = Vec::new();
                other.write_json(&mut out);
                Value::Text(String::from_utf8_lossy(&out).into_owned())
            }
        },
        ColumnKind::Int => value
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 9.2e18)
            .map(|f| match value {
                Attr::Int(i) => Value::BigInt(i),
                _ => Value::BigInt(f.round() as i64),
            })
            .unwrap_or(Value::Null),
        ColumnKind::Float => value.as_f64().map(Value::Double).unwrap_or(Value::Null),
        ColumnKind::Timestamp => match value {
            Attr::Str(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Value::Timestamp(duckdb::types::TimeUnit::Microsecond, t.timestamp_micros()))
                .unwrap_or(Value::Null),
            _ => Value::Null,
        },
        ColumnKind::Bool => match value {
            Attr::Bool(b) => Value::Boolean(b),
            Attr::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Value::Boolean(true),
                "false" | "0" | "no" => Value::Boolean(false),
                _ => Value::Null,
            },
            Attr::Int(0) => Value::Boolean(false),
            Attr::Int(1) => Value::Boolean(true),
            _ => Value::Null,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claude_code_strings_become_numbers_and_booleans() {
        assert_eq!(coerce(Attr::from_json(&json!("12")), ColumnKind::Int), Value::BigInt(12));
        assert_eq!(coerce(Attr::from_json(&json!("12.6")), ColumnKind::Float), Value::Double(12.6));
        assert_eq!(coerce(Attr::from_json(&json!(0)), ColumnKind::Float), Value::Double(0.0));
        assert_eq!(coerce(Attr::from_json(&json!(0.005671)), ColumnKind::Float), Value::Double(0.005671));
        assert_eq!(coerce(Attr::from_json(&json!("true")), ColumnKind::Bool), Value::Boolean(true));
        assert_eq!(coerce(Attr::from_json(&json!("false")), ColumnKind::Bool), Value::Boolean(false));
        assert_eq!(coerce(Attr::from_json(&json!(true)), ColumnKind::Bool), Value::Boolean(true));
        assert_eq!(coerce(Attr::from_json(&json!("maybe")), ColumnKind::Bool), Value::Null);
        assert_eq!(coerce(Attr::from_json(&json!("n/a")), ColumnKind::Int), Value::Null);
        assert_eq!(coerce(Attr::from_json(&json!(400)), ColumnKind::Text), Value::Text("400".into()));
        assert_eq!(coerce(Attr::from_json(&json!(9007199254740993i64)), ColumnKind::Int), Value::BigInt(9007199254740993));
    }

    #[test]
    fn any_values_keep_their_shape() {
        use any_value::Value as V;
        let arr = AnyValue {
            value: Some(V::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: vec![AnyValue { value: Some(V::StringValue("end_turn".into())) }],
            })),
        };
        assert_eq!(any_to_json(Some(&arr)), json!(["end_turn"]));
        assert_eq!(any_to_json(Some(&AnyValue { value: None })), Json::Null);
        assert_eq!(any_to_json(Some(&AnyValue { value: Some(V::BytesValue(vec![0xab, 1])) })), json!("ab01"));
        assert_eq!(any_to_json(Some(&AnyValue { value: Some(V::DoubleValue(f64::NAN)) })), json!("NaN"));
    }

    /// The values `lift` stores for one record as the path before schema v4 stored them:
    /// attributes through a `serde_json` map, typed values from the map, and the map without the
    /// lifted keys as text (plus the integers and booleans v4 also lifts).
    fn through_a_map(columns: &[AttrColumn], kvs: &[KeyValue]) -> (Vec<Value>, u64, String) {
        let mut map = attributes_to_map(kvs);
        let lifted = lift(columns, &Attrs::from_map(&map), None);
        for (i, c) in columns.iter().enumerate().filter(|(_, c)| c.liftable()) {
            let Some(sent) = map.get(c.keys[0]) else { continue };
            let exact = match (&lifted.typed[i], sent) {
                (Value::Text(t), Json::String(s)) => t == s,
                (Value::BigInt(n), Json::String(s)) => n.to_string() == *s,
                (Value::BigInt(n), Json::Number(x)) => x.as_i64() == Some(*n) && !x.is_f64(),
                (Value::Boolean(b), Json::String(s)) => b.to_string() == *s,
                (Value::Boolean(b), Json::Bool(x)) => b == x,
                (Value::Timestamp(_, us), Json::String(s)) => format_timestamp(*us).as_deref() == Some(s.as_str()),
                _ => false,
            };
            if exact {
                map.remove(c.keys[0]);
            }
        }
        (lifted.typed, lifted.native, Json::Object(map).to_string())
    }

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }) }
    }

    /// Straight from the OTLP values, lifting stores exactly what the map path did: the same
    /// typed values and the same JSON text byte for byte, for every record of every capture
    /// and for the values captures do not have (repeated keys, NaN, bytes, nested values,
    /// escapes, integers beyond i64 and numbers for text columns).
    #[test]
    fn lifting_from_otlp_values_stores_what_the_map_path_stored() {
        use crate::ingest::decode::{self, Encoding, ExportRequest};
        use crate::store::schema::{EVENT_COLUMNS, METRIC_COLUMNS, SPAN_COLUMNS};
        use any_value::Value as V;
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        let mut records: Vec<(&[AttrColumn], Vec<KeyValue>)> = Vec::new();
        let fixtures = [crate::test_fixtures::fixtures(), crate::test_fixtures::fixtures_v332()].concat();
        for f in fixtures.iter().filter(|f| f.protocol != "http/json") {
            let mut body = f.body();
            if f.content_encoding.as_deref() == Some("gzip") {
                body = decode::gunzip(&body, 64 << 20).unwrap();
            }
            match decode::decode(crate::ingest::testing::signal(f), Encoding::Protobuf, &body).unwrap() {
                ExportRequest::Logs(r) => records.extend(
                    r.resource_logs
                        .iter()
                        .flat_map(|r| &r.scope_logs)
                        .flat_map(|s| &s.log_records)
                        .map(|l| (EVENT_COLUMNS, l.attributes.clone())),
                ),
                ExportRequest::Traces(r) => records.extend(
                    r.resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .flat_map(|s| &s.spans)
                        .map(|l| (SPAN_COLUMNS, l.attributes.clone())),
                ),
                ExportRequest::Metrics(r) => {
                    for m in r.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics) {
                        if let Some(Data::Sum(d)) = &m.data {
                            records.extend(d.data_points.iter().map(|p| (METRIC_COLUMNS, p.attributes.clone())));
                        }
                    }
                }
            }
        }
        assert!(records.len() > 200, "{}", records.len());
        let nested = AnyValue {
            value: Some(V::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: vec![AnyValue { value: Some(V::IntValue(1)) }],
            })),
        };
        records.push((
            EVENT_COLUMNS,
            vec![
                kv("model", V::StringValue("first".into())),
                kv("model", V::StringValue("last \"quoted\" \u{1F600}\n".into())),
                kv("cost_usd", V::DoubleValue(f64::NAN)),
                kv("duration_ms", V::DoubleValue(1e21)),
                kv("input_tokens", V::DoubleValue(12.0)),
                kv("output_tokens", V::StringValue("007".into())),
                kv("status_code", V::IntValue(i64::MIN)),
                kv("success", V::StringValue("TRUE".into())),
                kv("tool_name", V::IntValue(400)),
                kv("error", V::BytesValue(vec![0xab, 0x01])),
                kv(
                    "prompt",
                    V::KvlistValue(opentelemetry_proto::tonic::common::v1::KeyValueList { values: vec![kv("b", V::BoolValue(false))] }),
                ),
                KeyValue { key: "tool_parameters".into(), value: Some(nested) },
                KeyValue { key: "session.id".into(), value: None },
                kv("event.timestamp", V::StringValue("2026-12-01T07:09:12.345+00:00".into())),
                kv("zzz", V::DoubleValue(0.1)),
            ],
        ));
        for (columns, kvs) in &records {
            let direct = lift(columns, &Attrs::from_kvs(kvs), None);
            let (typed, native, rest) = through_a_map(columns, kvs);
            // compared as text: NaN is not equal to itself
            assert_eq!(format!("{:?}", (&direct.typed, direct.native, &direct.rest)), format!("{:?}", (&typed, native, &rest)));
            // a column is marked lifted exactly when its key left the JSON
            let kept: Map<String, Json> = serde_json::from_str(&rest).unwrap();
            let sent = attributes_to_map(kvs);
            let left: Vec<bool> =
                columns.iter().map(|c| c.liftable() && sent.contains_key(c.keys[0]) && !kept.contains_key(c.keys[0])).collect();
            let marked: Vec<bool> = (0..columns.len()).map(|i| direct.columns >> i & 1 == 1).collect();
            assert_eq!(marked, left, "{rest}");
            assert_eq!(Attrs::from_kvs(kvs).json(), Json::Object(attributes_to_map(kvs)).to_string());
        }
    }
}
