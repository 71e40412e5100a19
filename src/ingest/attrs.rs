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

/// Typed column values for `columns`, taken from the record's attributes.
pub fn typed_values(columns: &[AttrColumn], attrs: &Map<String, Json>) -> Vec<Value> {
    columns
        .iter()
        .map(|c| c.keys.iter().filter_map(|k| attrs.get(*k)).find(|v| !v.is_null()).map(|v| coerce(v, c.kind)).unwrap_or(Value::Null))
        .collect()
}

/// What `lift` gives: the typed column values, which of them were sent as JSON numbers or
/// booleans (bit `i` for column `i`), and the attributes left for the `attributes` JSON.
#[derive(Debug)]
pub struct Lifted {
    pub typed: Vec<Value>,
    pub native: u64,
    pub rest: Map<String, Json>,
}

/// Typed column values for `columns`, and the attributes left for the `attributes` JSON: every
/// attribute except those a single-key text, integer, boolean or timestamp column holds exactly
/// as sent (a string that reads back unchanged from the column, or an integer or boolean sent
/// as such). `schema::full_attributes_sql` puts those back, so nothing is lost while each value
/// is stored once.
pub fn lift(columns: &[AttrColumn], mut attrs: Map<String, Json>) -> Lifted {
    let typed = typed_values(columns, &attrs);
    let mut native = 0u64;
    for (i, (c, v)) in columns.iter().zip(&typed).enumerate() {
        if !c.liftable() || i >= 64 {
            continue;
        }
        let Some(sent) = attrs.get(c.keys[0]) else { continue };
        let (exact, as_native) = match (v, sent) {
            (Value::Text(t), Json::String(s)) => (t == s, false),
            (Value::BigInt(i), Json::String(s)) => (i.to_string() == *s, false),
            (Value::BigInt(i), Json::Number(n)) => (n.as_i64() == Some(*i) && !n.is_f64(), true),
            (Value::Boolean(b), Json::String(s)) => (b.to_string() == *s, false),
            (Value::Boolean(b), Json::Bool(x)) => (b == x, true),
            (Value::Timestamp(_, us), Json::String(s)) => (format_timestamp(*us).as_deref() == Some(s.as_str()), false),
            _ => (false, false),
        };
        if exact {
            attrs.remove(c.keys[0]);
            if as_native {
                native |= 1 << i;
            }
        }
    }
    Lifted { typed, native, rest: attrs }
}

/// A timestamp column's value as Claude Code writes `event.timestamp` (and as the `*_full`
/// views give it back).
fn format_timestamp(us: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// Coerces one JSON attribute value to a column kind; a value that does not fit is NULL in the
/// typed column (it stays in the `attributes` JSON).
pub fn coerce(value: &Json, kind: ColumnKind) -> Value {
    match kind {
        ColumnKind::Text => match value {
            Json::Null => Value::Null,
            Json::String(s) => Value::Text(s.clone()),
            other => Value::Text(other.to_string()),
        },
        ColumnKind::Int => as_f64(value)
            .filter(|f| f.is_finite() && f.abs() < 9.2e18)
            .map(|f| match value.as_i64() {
                Some(i) => Value::BigInt(i),
                None => Value::BigInt(f.round() as i64),
            })
            .unwrap_or(Value::Null),
        ColumnKind::Float => as_f64(value).map(Value::Double).unwrap_or(Value::Null),
        ColumnKind::Timestamp => match value {
            Json::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Value::Timestamp(duckdb::types::TimeUnit::Microsecond, t.timestamp_micros()))
                .unwrap_or(Value::Null),
            _ => Value::Null,
        },
        ColumnKind::Bool => match value {
            Json::Bool(b) => Value::Boolean(*b),
            Json::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Value::Boolean(true),
                "false" | "0" | "no" => Value::Boolean(false),
                _ => Value::Null,
            },
            Json::Number(n) => match n.as_i64() {
                Some(0) => Value::Boolean(false),
                Some(1) => Value::Boolean(true),
                _ => Value::Null,
            },
            _ => Value::Null,
        },
    }
}

fn as_f64(value: &Json) -> Option<f64> {
    match value {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok(),
        Json::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

pub fn string_attr<'a>(attrs: &'a Map<String, Json>, key: &str) -> Option<&'a str> {
    attrs.get(key).and_then(Json::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claude_code_strings_become_numbers_and_booleans() {
        assert_eq!(coerce(&json!("12"), ColumnKind::Int), Value::BigInt(12));
        assert_eq!(coerce(&json!("12.6"), ColumnKind::Float), Value::Double(12.6));
        assert_eq!(coerce(&json!(0), ColumnKind::Float), Value::Double(0.0));
        assert_eq!(coerce(&json!(0.005671), ColumnKind::Float), Value::Double(0.005671));
        assert_eq!(coerce(&json!("true"), ColumnKind::Bool), Value::Boolean(true));
        assert_eq!(coerce(&json!("false"), ColumnKind::Bool), Value::Boolean(false));
        assert_eq!(coerce(&json!(true), ColumnKind::Bool), Value::Boolean(true));
        assert_eq!(coerce(&json!("maybe"), ColumnKind::Bool), Value::Null);
        assert_eq!(coerce(&json!("n/a"), ColumnKind::Int), Value::Null);
        assert_eq!(coerce(&json!(400), ColumnKind::Text), Value::Text("400".into()));
        assert_eq!(coerce(&json!(9007199254740993i64), ColumnKind::Int), Value::BigInt(9007199254740993));
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
}
