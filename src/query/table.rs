//! Query results: DuckDB's Arrow record batches turned into fields of the types Grafana reads
//! (see `frame`), straight from the batches' arrays. What cannot be sent exactly is sent as text
//! with a notice rather than failing the query: integers beyond 64 bits, decimals beyond 15
//! significant digits; times outside the nanosecond range are clamped, with a notice.
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray, TimestampNanosecondArray, UInt64Array};
use arrow::compute::{cast, concat};
use arrow::datatypes::{self as adt, DataType, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use base64::Engine;

use crate::frame::{Field, Frame, FrameType, Kind, Meta, Notice, VisType};

/// A whole result: fields of equal length, and what was changed to send it.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub fields: Vec<Field>,
    pub notices: Vec<Notice>,
}

impl Table {
    /// The result's columns, named as in `schema` or, given, as in `names`.
    pub fn from_batches(schema: &Schema, batches: &[RecordBatch], names: Option<&[String]>) -> Result<Table, String> {
        let mut table = Table::default();
        for (i, column) in schema.fields().iter().enumerate() {
            let name = names.and_then(|n| n.get(i)).unwrap_or(column.name());
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
            let whole = match arrays.len() {
                0 => arrow::array::new_empty_array(column.data_type()),
                1 => batches[0].column(i).clone(),
                _ => concat(&arrays).map_err(|e| format!("column {name:?}: {e}"))?,
            };
            let values = normalize(name, whole, &mut table.notices).map_err(|e| format!("column {name:?}: {e}"))?;
            table.fields.push(Field::new(name, values).map_err(|e| e.to_string())?);
        }
        Ok(table)
    }

    pub fn rows(&self) -> usize {
        self.fields.first().map(Field::len).unwrap_or(0)
    }

    pub fn column(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.name.as_str()).collect()
    }

    pub fn rename(&mut self, from: &str, to: &str) {
        if let Some(f) = self.fields.iter_mut().find(|f| f.name == from) {
            f.name = to.to_string();
        }
    }

    /// Keeps the first `rows` rows.
    pub fn truncate(&mut self, rows: usize) {
        self.fields.iter_mut().for_each(|f| f.truncate(rows));
    }

    /// Marks text columns that hold JSON documents as JSON fields (the browser gets the values
    /// as JSON, not as strings).
    pub fn json(mut self, names: &[&str]) -> Table {
        for i in 0..self.fields.len() {
            if names.contains(&self.fields[i].name.as_str()) {
                self.json_at(i);
            }
        }
        self
    }

    /// As `json`, for the column at `index`. A column with a value that is not JSON stays text,
    /// with a notice: one invalid document would fail the whole response in Grafana.
    pub fn json_at(&mut self, index: usize) {
        let Some(f) = self.fields.get_mut(index).filter(|f| f.kind() == Kind::Text) else { return };
        let text = f.values().as_string::<i32>();
        if text.iter().flatten().any(|doc| serde_json::from_str::<serde::de::IgnoredAny>(doc).is_err()) {
            self.notices.push(Notice::warning(format!("{}: not every value is JSON, sent as text", f.name)));
            return;
        }
        *f = Field::json_documents(f.name.clone(), text);
    }

    /// Text columns holding integers (HUGEINT, UHUGEINT and BIGNUM arrive so from raw SQL)
    /// become 64-bit integer fields when every value fits, else stay text with a notice.
    pub fn integers_from_text(&mut self, index: usize) -> Result<(), String> {
        let Some(f) = self.fields.get_mut(index).filter(|f| f.kind() == Kind::Text) else { return Ok(()) };
        let text = f.values().as_string::<i32>();
        let values: ArrayRef = match every(text.iter(), |s| s.parse::<i64>().ok()) {
            Some(ints) => Arc::new(Int64Array::from(ints)),
            None => match every(text.iter(), |s| s.parse::<u64>().ok()) {
                Some(uints) => Arc::new(UInt64Array::from(uints)),
                None => {
                    self.notices.push(Notice::warning(format!("{}: integers beyond 64 bits are sent as text", f.name)));
                    return Ok(());
                }
            },
        };
        *f = Field::new(f.name.clone(), values).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The table as one frame: `numeric-long` when it is string dimensions and number values,
    /// else `table`; an empty result is "no data". Units by column name for `Units::ByName`.
    pub fn into_frame(self, name: &str, executed: String, units: Units) -> Frame {
        let frame_type = if is_numeric_long(&self.fields) { FrameType::NumericLong } else { FrameType::Table };
        let mut meta = Meta::new(Some(frame_type), Some(VisType::Table), Some(executed));
        meta.notices = self.notices;
        if self.fields.first().is_none_or(Field::is_empty) {
            return Frame::no_data(name, meta);
        }
        let fields = self
            .fields
            .into_iter()
            .map(|f| {
                let unit = match units {
                    Units::ByName if matches!(f.kind(), Kind::Number) => Some(unit_for(&f.name)),
                    _ => None,
                };
                f.with_unit(unit)
            })
            .collect();
        Frame::new(name, meta, fields)
    }
}

/// Whether result fields get units from their names (the typed queries, whose columns this
/// plugin names) or none, so a panel's own unit applies (raw SQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    ByName,
    None,
}

/// The data plane's numeric-long shape: at least one number field, every other field a string,
/// and a string dimension whenever there is more than one row.
fn is_numeric_long(fields: &[Field]) -> bool {
    let numbers = fields.iter().filter(|f| matches!(f.kind(), Kind::Number | Kind::Bool)).count();
    let strings = fields.iter().filter(|f| f.kind() == Kind::Text).count();
    let rows = fields.first().map(Field::len).unwrap_or(0);
    numbers > 0 && numbers + strings == fields.len() && (rows <= 1 || strings > 0)
}

/// The unit of a number column, by the naming convention of the typed queries' columns.
pub fn unit_for(name: &str) -> &'static str {
    let n = name.to_ascii_lowercase();
    // a ratio first: `cost_ratio` is a share, not money
    if n.ends_with("_rate") || n.ends_with("ratio") {
        "percentunit"
    } else if n.ends_with("usd") || n.starts_with("cost") {
        "currencyUSD"
    } else if n.ends_with("_ms") || n == "duration" {
        "ms"
    } else if n.ends_with("_s") {
        "s"
    } else if ["event_sequence", "attempt", "status_code", "prompt_length"].contains(&n.as_str()) {
        // ordinals and sizes, not quantities to abbreviate
        "none"
    } else {
        // counts and tokens: 1.2K, 3.4 Mil
        "short"
    }
}

/// Converts one column to a type Grafana reads.
fn normalize(name: &str, values: ArrayRef, notices: &mut Vec<Notice>) -> Result<ArrayRef, String> {
    let data_type = values.data_type().clone();
    Ok(match &data_type {
        DataType::Timestamp(unit, _) => {
            let ints = cast(&values, &DataType::Int64).map_err(|e| e.to_string())?;
            to_nanos(name, ints.as_primitive::<adt::Int64Type>(), nanos_per(*unit), notices)
        }
        DataType::Date32 => {
            let days = cast(&values, &DataType::Int64).map_err(|e| e.to_string())?;
            to_nanos(name, days.as_primitive::<adt::Int64Type>(), 86_400_000_000_000, notices)
        }
        DataType::Date64 => {
            let ms = cast(&values, &DataType::Int64).map_err(|e| e.to_string())?;
            to_nanos(name, ms.as_primitive::<adt::Int64Type>(), 1_000_000, notices)
        }
        DataType::Decimal128(_, scale) => decimal(name, &values, *scale, notices)?,
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal256(..) => {
            let scale = match data_type {
                DataType::Decimal32(_, s) | DataType::Decimal64(_, s) | DataType::Decimal256(_, s) => s,
                _ => 0,
            };
            match cast(&values, &DataType::Decimal128(38, scale)) {
                Ok(d) => decimal(name, &d, scale, notices)?,
                Err(_) => {
                    notices.push(Notice::warning(format!("{name}: decimals beyond 38 digits are sent as text")));
                    cast(&values, &DataType::Utf8).map_err(|e| e.to_string())?
                }
            }
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            // BLOB: base64 text, the form Grafana users can copy
            let bytes = cast(&values, &DataType::LargeBinary).map_err(|e| e.to_string())?;
            let engine = base64::engine::general_purpose::STANDARD;
            Arc::new(bytes.as_binary::<i64>().iter().map(|v| v.map(|b| engine.encode(b))).collect::<StringArray>())
        }
        DataType::LargeUtf8 | DataType::Utf8View => cast(&values, &DataType::Utf8).map_err(|e| e.to_string())?,
        DataType::Float16 => cast(&values, &DataType::Float32).map_err(|e| e.to_string())?,
        DataType::Dictionary(_, inner) => {
            let plain = cast(&values, inner).map_err(|e| e.to_string())?;
            normalize(name, plain, notices)?
        }
        DataType::Null => Arc::new(StringArray::new_null(values.len())),
        t if Kind::of(t).is_some() => values,
        _ => as_text(&values)?,
    })
}

fn nanos_per(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// Scales to nanoseconds; values past what i64 nanoseconds hold (before 1677, after 2262,
/// DuckDB's ±infinity) are clamped to the nearest end.
fn to_nanos(name: &str, values: &arrow::array::Int64Array, factor: i64, notices: &mut Vec<Notice>) -> ArrayRef {
    let mut clamped = 0usize;
    let nanos: TimestampNanosecondArray = values
        .iter()
        .map(|v| {
            v.map(|v| {
                v.checked_mul(factor).unwrap_or_else(|| {
                    clamped += 1;
                    if v < 0 {
                        i64::MIN
                    } else {
                        i64::MAX
                    }
                })
            })
        })
        .collect();
    if clamped > 0 {
        notices.push(Notice::warning(format!(
            "{name}: {clamped} time(s) outside 1677-09-21 … 2262-04-11 (Grafana's nanosecond range) were clamped to it"
        )));
    }
    Arc::new(nanos.with_timezone(crate::frame::UTC))
}

/// DECIMAL and HUGEINT (DuckDB sends both as Decimal128): integers as Int64 / UInt64 when every
/// value fits, fractions as Float64 when every value has at most 15 significant digits (a double
/// gives those back unchanged), text with a notice otherwise.
fn decimal(name: &str, values: &ArrayRef, scale: i8, notices: &mut Vec<Notice>) -> Result<ArrayRef, String> {
    let d = values.as_primitive::<adt::Decimal128Type>();
    if scale <= 0 {
        let factor = 10i128.checked_pow(u32::from(scale.unsigned_abs())).unwrap_or(i128::MAX);
        if let Some(ints) = every(d.iter(), |v| v.checked_mul(factor)) {
            if let Some(signed) = every(ints.iter().copied(), |v| i64::try_from(v).ok()) {
                return Ok(Arc::new(Int64Array::from(signed)));
            }
            if let Some(unsigned) = every(ints.iter().copied(), |v| u64::try_from(v).ok()) {
                return Ok(Arc::new(UInt64Array::from(unsigned)));
            }
        }
        notices.push(Notice::warning(format!("{name}: integers beyond 64 bits are sent as text")));
    } else if d.iter().flatten().all(|v| v.unsigned_abs() < 1_000_000_000_000_000) {
        return cast(values, &DataType::Float64).map_err(|e| e.to_string());
    } else {
        notices.push(Notice::warning(format!("{name}: decimals with more than 15 significant digits are sent as text")));
    }
    cast(values, &DataType::Utf8).map_err(|e| e.to_string())
}

/// `convert` applied to every value, nulls kept; `None` as soon as one value does not convert.
fn every<T, U>(values: impl Iterator<Item = Option<T>>, convert: impl Fn(T) -> Option<U>) -> Option<Vec<Option<U>>> {
    values
        .map(|v| match v {
            None => Some(None),
            Some(v) => convert(v).map(Some),
        })
        .collect()
}

/// Any other type (TIME, INTERVAL, lists, structs, …) in Arrow's display form.
fn as_text(values: &ArrayRef) -> Result<ArrayRef, String> {
    if let Ok(text) = cast(values, &DataType::Utf8) {
        return Ok(text);
    }
    let options = FormatOptions::default().with_null("");
    let formatter = ArrayFormatter::try_new(values.as_ref(), &options).map_err(|e| e.to_string())?;
    let text: StringArray = (0..values.len()).map(|i| values.is_valid(i).then(|| formatter.value(i).to_string())).collect();
    Ok(Arc::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(sql: &str) -> Table {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        let arrow = stmt.query_arrow([]).unwrap();
        let schema = arrow.get_schema();
        let batches: Vec<_> = arrow.collect();
        Table::from_batches(&schema, &batches, None).unwrap()
    }

    fn types(t: &Table) -> Vec<(String, DataType)> {
        t.fields.iter().map(|f| (f.name.clone(), f.values().data_type().clone())).collect()
    }

    #[test]
    fn duckdb_types_become_grafana_types() {
        let t = table(
            "SELECT TIMESTAMP '2026-01-02 03:04:05.123456' AS ts, DATE '2026-01-02' AS d, 12::HUGEINT AS h, 1.5::DECIMAL(18,3) AS dec,
                'ab'::BLOB AS b, 'x'::ENUM ('x', 'y') AS e, TIME '01:02:03' AS t, [1, 2] AS l, 7::UTINYINT AS u, NULL AS n, 'text' AS s",
        );
        let ns = DataType::Timestamp(TimeUnit::Nanosecond, Some(crate::frame::UTC.into()));
        assert_eq!(
            types(&t),
            [
                ("ts".into(), ns.clone()),
                ("d".into(), ns),
                ("h".into(), DataType::Int64),
                ("dec".into(), DataType::Float64),
                ("b".into(), DataType::Utf8),
                ("e".into(), DataType::Utf8),
                ("t".into(), DataType::Utf8),
                ("l".into(), DataType::Utf8),
                ("u".into(), DataType::UInt8),
                ("n".into(), DataType::Int32),
                ("s".into(), DataType::Utf8),
            ]
        );
        assert_eq!(t.column("ts").unwrap().time_ns(0), Some(1_767_323_045_123_456_000));
        assert_eq!(t.column("d").unwrap().time_ns(0), Some(1_767_312_000_000_000_000));
        assert_eq!(t.column("b").unwrap().text(0), Some("YWI="));
        assert_eq!(t.column("t").unwrap().text(0), Some("01:02:03"));
        assert!(t.notices.is_empty(), "{:?}", t.notices);
    }

    #[test]
    fn what_does_not_fit_is_text_or_clamped_with_a_notice() {
        let t = table(
            // (DuckDB's Arrow export holds HUGEINT in 38 digits: raw SQL sends it as text instead)
            "SELECT 12345678901234567890123::HUGEINT AS big, 18446744073709551615::HUGEINT AS u64,
                1234567890.1234567::DECIMAL(38,7) AS precise, TIMESTAMP '2300-01-01' AS far, 'infinity'::TIMESTAMP AS inf",
        );
        assert_eq!(t.column("big").unwrap().text(0), Some("12345678901234567890123"));
        assert_eq!(t.column("u64").unwrap().values().data_type(), &DataType::UInt64);
        assert_eq!(t.column("precise").unwrap().text(0), Some("1234567890.1234567"));
        assert_eq!(t.column("far").unwrap().time_ns(0), Some(i64::MAX));
        assert_eq!(t.column("inf").unwrap().time_ns(0), Some(i64::MAX));
        let texts: Vec<&str> = t.notices.iter().map(|n| n.text.as_str()).collect();
        assert_eq!(texts.len(), 4, "{texts:?}");
        assert!(texts[0].starts_with("big: integers beyond 64 bits"), "{texts:?}");
        assert!(texts[1].starts_with("precise: decimals with more than 15"), "{texts:?}");
        assert!(texts[2].starts_with("far: 1 time(s) outside"), "{texts:?}");
    }

    #[test]
    fn numeric_long_only_for_dimensions_and_values() {
        let shape = |sql: &str| table(sql).into_frame("t", String::new(), Units::ByName).meta.frame_type();
        assert_eq!(shape("SELECT 'a' AS model, 1.5 AS cost_usd"), Some(FrameType::NumericLong));
        assert_eq!(shape("SELECT 1 AS n"), Some(FrameType::NumericLong));
        assert_eq!(shape("SELECT * FROM range(2)"), Some(FrameType::Table), "two rows need a dimension");
        assert_eq!(shape("SELECT now() AS t, 1 AS n"), Some(FrameType::Table));
        assert_eq!(shape("SELECT 'a' AS text"), Some(FrameType::Table));
        let frame = table("SELECT 'a' AS model, 1.5 AS cost_usd, 2 AS tokens").into_frame("t", String::new(), Units::ByName);
        let units: Vec<_> = frame.fields.iter().map(|f| f.config.unit).collect();
        assert_eq!(units, [None, Some("currencyUSD"), Some("short")]);
        let raw = table("SELECT 1.5 AS cost_usd").into_frame("t", String::new(), Units::None);
        assert_eq!(raw.fields[0].config.unit, None, "raw SQL leaves units to the panel");
        assert!(table("SELECT 1 AS n WHERE false").into_frame("t", String::new(), Units::ByName).fields.is_empty());
    }

    #[test]
    fn json_columns_and_integer_text() {
        let mut t = table("SELECT '{\"a\":1}' AS attributes, '12' AS h, '99999999999999999999999' AS v").json(&["attributes"]);
        t.integers_from_text(1).unwrap();
        t.integers_from_text(2).unwrap();
        assert_eq!(t.column("attributes").unwrap().kind(), Kind::Json);
        assert_eq!(t.column("h").unwrap().number(0), Some(12.0));
        assert_eq!(t.column("v").unwrap().kind(), Kind::Text);
        assert_eq!(t.notices.len(), 1);
    }
}
