//! DuckDB results (Arrow record batches) → Grafana SDK frames.
//!
//! The SDK's own arrow-rs bridge does not build against the arrow DuckDB uses, so columns are
//! converted value by value into the SDK's typed fields. DuckDB timestamps are µs; the SDK's time
//! fields are ns (going through `DateTime` does the rescaling). Types the SDK rejects (DECIMAL,
//! HUGEINT, LIST, STRUCT, MAP, DATE, INTERVAL, …) become f64 or their text form.
use chrono::{DateTime, Utc};
use duckdb::arrow::array::{Array, ArrayRef, AsArray};
use duckdb::arrow::compute::cast;
use duckdb::arrow::datatypes::{self as adt, DataType, TimeUnit};
use duckdb::arrow::record_batch::RecordBatch;
use grafana_plugin_sdk::data::{Field, FieldConfig, IntoOptField};

/// A column of a query result, kept in Rust types until it becomes an SDK field.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Time(Vec<Option<DateTime<Utc>>>),
    Int(Vec<Option<i64>>),
    UInt(Vec<Option<u64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
}

impl Column {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        match self {
            Column::Time(v) => v.len(),
            Column::Int(v) => v.len(),
            Column::UInt(v) => v.len(),
            Column::Float(v) => v.len(),
            Column::Bool(v) => v.len(),
            Column::Text(v) => v.len(),
        }
    }

    pub fn into_field(self, name: &str) -> Field {
        match self {
            Column::Time(v) => v.into_opt_field(name),
            Column::Int(v) => v.into_opt_field(name),
            Column::UInt(v) => v.into_opt_field(name),
            Column::Float(v) => v.into_opt_field(name),
            Column::Bool(v) => v.into_opt_field(name),
            Column::Text(v) => v.into_opt_field(name),
        }
    }

    /// The value at `row` as f64, for numeric columns.
    pub fn f64_at(&self, row: usize) -> Option<f64> {
        match self {
            Column::Int(v) => v.get(row).copied().flatten().map(|x| x as f64),
            Column::UInt(v) => v.get(row).copied().flatten().map(|x| x as f64),
            Column::Float(v) => v.get(row).copied().flatten(),
            _ => None,
        }
    }

    pub fn text_at(&self, row: usize) -> Option<&str> {
        match self {
            Column::Text(v) => v.get(row).and_then(|x| x.as_deref()),
            _ => None,
        }
    }
}

/// A whole result: column names and columns of equal length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub names: Vec<String>,
    pub columns: Vec<Column>,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.columns.first().map(Column::len).unwrap_or(0)
    }

    /// Keeps the first `rows` rows.
    pub fn truncate(&mut self, rows: usize) {
        for c in &mut self.columns {
            match c {
                Column::Time(v) => v.truncate(rows),
                Column::Int(v) => v.truncate(rows),
                Column::UInt(v) => v.truncate(rows),
                Column::Float(v) => v.truncate(rows),
                Column::Bool(v) => v.truncate(rows),
                Column::Text(v) => v.truncate(rows),
            }
        }
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.names.iter().position(|n| n == name).map(|i| &self.columns[i])
    }

    pub fn from_batches(schema: &adt::Schema, batches: &[RecordBatch]) -> Result<Table, String> {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let mut columns = Vec::with_capacity(names.len());
        for (i, field) in schema.fields().iter().enumerate() {
            let arrays: Vec<&ArrayRef> = batches.iter().map(|b| b.column(i)).collect();
            columns.push(convert(field.data_type(), &arrays).map_err(|e| format!("column {:?}: {e}", field.name()))?);
        }
        Ok(Table { names, columns })
    }

    /// SDK fields with units and display names chosen by column name.
    pub fn into_fields(self) -> Vec<Field> {
        self.names.iter().zip(self.columns).map(|(name, col)| col.into_field(name).with_config(field_config(name))).collect()
    }
}

fn convert(data_type: &DataType, arrays: &[&ArrayRef]) -> Result<Column, String> {
    macro_rules! prim {
        ($variant:ident, $arrow:ty, $rust:ty) => {
            Column::$variant(arrays.iter().flat_map(|a| a.as_primitive::<$arrow>().iter().map(|v| v.map(|x| x as $rust))).collect())
        };
    }
    Ok(match data_type {
        DataType::Timestamp(unit, _) => {
            let to_time = |v: i64| -> Option<DateTime<Utc>> {
                match unit {
                    TimeUnit::Second => DateTime::from_timestamp(v, 0),
                    TimeUnit::Millisecond => DateTime::from_timestamp_millis(v),
                    TimeUnit::Microsecond => DateTime::from_timestamp_micros(v),
                    TimeUnit::Nanosecond => Some(DateTime::from_timestamp_nanos(v)),
                }
            };
            let mut out = Vec::new();
            for a in arrays {
                let ints = cast(a, &DataType::Int64).map_err(|e| e.to_string())?;
                out.extend(ints.as_primitive::<adt::Int64Type>().iter().map(|v| v.and_then(to_time)));
            }
            Column::Time(out)
        }
        DataType::Int8 => prim!(Int, adt::Int8Type, i64),
        DataType::Int16 => prim!(Int, adt::Int16Type, i64),
        DataType::Int32 => prim!(Int, adt::Int32Type, i64),
        DataType::Int64 => prim!(Int, adt::Int64Type, i64),
        DataType::UInt8 => prim!(UInt, adt::UInt8Type, u64),
        DataType::UInt16 => prim!(UInt, adt::UInt16Type, u64),
        DataType::UInt32 => prim!(UInt, adt::UInt32Type, u64),
        DataType::UInt64 => prim!(UInt, adt::UInt64Type, u64),
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) | DataType::Decimal256(..) => {
            let mut out = Vec::new();
            for a in arrays {
                let f = cast(a, &DataType::Float64).map_err(|e| e.to_string())?;
                out.extend(f.as_primitive::<adt::Float64Type>().iter());
            }
            Column::Float(out)
        }
        DataType::Boolean => Column::Bool(arrays.iter().flat_map(|a| a.as_boolean().iter()).collect()),
        DataType::Null => Column::Text(arrays.iter().flat_map(|a| std::iter::repeat_n(None, a.len())).collect()),
        _ => {
            // Everything else (text, dates, intervals, lists, structs, maps, blobs) as text.
            let mut out = Vec::new();
            for a in arrays {
                let s = cast(a, &DataType::Utf8).map_err(|e| format!("cannot show {data_type} values: {e}"))?;
                out.extend(s.as_string::<i32>().iter().map(|v| v.map(str::to_string)));
            }
            Column::Text(out)
        }
    })
}

/// Units by naming convention of the result columns.
pub fn unit_for(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    if n.ends_with("usd") || n.starts_with("cost") {
        Some("currencyUSD")
    } else if n.ends_with("_ms") || n == "duration" {
        Some("ms")
    } else if n.ends_with("_s") {
        Some("s")
    } else if n.ends_with("_rate") || n.ends_with("ratio") {
        Some("percentunit")
    } else if n.contains("tokens") {
        Some("suffix: tokens")
    } else {
        None
    }
}

/// `cost_per_call_usd` → "Cost per call (USD)".
pub fn display_name(name: &str) -> String {
    let (base, suffix) = [("_usd", " (USD)"), ("_ms", " (ms)"), ("_s", " (s)")]
        .iter()
        .find_map(|(s, label)| name.strip_suffix(s).map(|b| (b, *label)))
        .unwrap_or((name, ""));
    let words = base.replace(['_', '.'], " ");
    let mut chars = words.chars();
    let first: String = chars.next().map(|c| c.to_uppercase().collect()).unwrap_or_default();
    format!("{first}{}{suffix}", chars.as_str())
}

/// Unit, decimals and display name of a table column.
pub fn field_config(name: &str) -> FieldConfig {
    let mut config = FieldConfig::default();
    config.display_name = Some(display_name(name));
    if let Some(unit) = unit_for(name) {
        config.unit = Some(unit.to_string());
        if unit == "currencyUSD" {
            config.decimals = Some(4);
        }
    }
    config
}
