//! Rows → one Arrow record batch per table, for DuckDB's Arrow appender: appending whole columns
//! costs a fraction of appending value by value (see BENCHMARKS.md).
use std::sync::Arc;

use duckdb::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt32Builder,
    UInt64Builder,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::types::Value;
use duckdb::Connection;

/// A table's column types in order, read from the database so they always match it.
#[derive(Debug, Clone)]
pub struct TableLayout {
    schema: Arc<Schema>,
}

impl TableLayout {
    pub fn read(conn: &Connection, table: &str) -> duckdb::Result<TableLayout> {
        let mut stmt = conn.prepare(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main' ORDER BY ordinal_position",
        )?;
        let columns = stmt.query_map([table], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?.collect::<Result<Vec<_>, _>>()?;
        let fields: Vec<Field> = columns.into_iter().map(|(name, ty)| Field::new(name, arrow_type(&ty), true)).collect();
        Ok(TableLayout { schema: Arc::new(Schema::new(fields)) })
    }

    /// Builds the record batch of `rows`, each written straight into the column builders.
    pub fn batch<'r, R: Row + 'r>(&self, rows: impl ExactSizeIterator<Item = &'r R>) -> Result<RecordBatch, String> {
        let n = rows.len();
        let mut builders: Vec<ColumnBuilder> = self.schema.fields().iter().map(|f| ColumnBuilder::new(f.data_type(), n)).collect();
        let columns = builders.len();
        for row in rows {
            let mut cells = Cells { builders: &mut builders, at: 0, error: None };
            row.write(&mut cells);
            if let Some(e) = cells.error {
                return Err(e);
            }
            if cells.at != columns {
                return Err(format!("row has {} values, the table {columns} columns", cells.at));
            }
        }
        let arrays: Vec<ArrayRef> = builders.into_iter().map(ColumnBuilder::finish).collect();
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| e.to_string())
    }
}

/// A row of a table: writes its values in column order (`rows::*`).
pub trait Row {
    fn write(&self, cells: &mut Cells);
}

/// One value of a row, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    Null,
    /// Microseconds since the epoch.
    Timestamp(i64),
    Int32(i32),
    UInt32(u32),
    Int64(i64),
    UInt64(u64),
    Float64(f64),
    Boolean(bool),
    Text(&'a str),
}

impl<'a> From<&'a Value> for Cell<'a> {
    fn from(v: &'a Value) -> Cell<'a> {
        match v {
            Value::Timestamp(_, us) => Cell::Timestamp(*us),
            Value::Int(i) => Cell::Int32(*i),
            Value::UInt(i) => Cell::UInt32(*i),
            Value::BigInt(i) => Cell::Int64(*i),
            Value::UBigInt(i) => Cell::UInt64(*i),
            Value::Double(f) => Cell::Float64(*f),
            Value::Boolean(b) => Cell::Boolean(*b),
            Value::Text(s) => Cell::Text(s),
            _ => Cell::Null,
        }
    }
}

impl<'a, T> From<Option<T>> for Cell<'a>
where
    Cell<'a>: From<T>,
{
    fn from(v: Option<T>) -> Cell<'a> {
        v.map_or(Cell::Null, Cell::from)
    }
}

impl<'a> From<&'a String> for Cell<'a> {
    fn from(s: &'a String) -> Cell<'a> {
        Cell::Text(s)
    }
}

impl<'a> From<&'a str> for Cell<'a> {
    fn from(s: &'a str) -> Cell<'a> {
        Cell::Text(s)
    }
}

/// The column builders a row writes its values into, one after the other.
pub struct Cells<'b> {
    builders: &'b mut [ColumnBuilder],
    at: usize,
    error: Option<String>,
}

impl Cells<'_> {
    pub fn push<'a>(&mut self, cell: impl Into<Cell<'a>>) {
        let result = match self.builders.get_mut(self.at) {
            Some(b) => b.push(cell.into()),
            None => Err("row has more values than the table has columns".to_string()),
        };
        if let Err(e) = result {
            self.error.get_or_insert(e);
        }
        self.at += 1;
    }
}

fn arrow_type(duckdb_type: &str) -> DataType {
    match duckdb_type {
        "TIMESTAMP" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "INTEGER" => DataType::Int32,
        "UINTEGER" => DataType::UInt32,
        "BIGINT" => DataType::Int64,
        "UBIGINT" => DataType::UInt64,
        "DOUBLE" => DataType::Float64,
        "BOOLEAN" => DataType::Boolean,
        // VARCHAR and JSON (a VARCHAR alias)
        _ => DataType::Utf8,
    }
}

enum ColumnBuilder {
    Timestamp(TimestampMicrosecondBuilder),
    Int32(Int32Builder),
    UInt32(UInt32Builder),
    Int64(Int64Builder),
    UInt64(UInt64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Utf8(StringBuilder),
}

impl ColumnBuilder {
    fn new(t: &DataType, n: usize) -> ColumnBuilder {
        match t {
            DataType::Timestamp(..) => ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(n)),
            DataType::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(n)),
            DataType::UInt32 => ColumnBuilder::UInt32(UInt32Builder::with_capacity(n)),
            DataType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(n)),
            DataType::UInt64 => ColumnBuilder::UInt64(UInt64Builder::with_capacity(n)),
            DataType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(n)),
            DataType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(n)),
            _ => ColumnBuilder::Utf8(StringBuilder::with_capacity(n, n * 16)),
        }
    }

    fn push(&mut self, v: Cell) -> Result<(), String> {
        use ColumnBuilder as B;
        match (self, v) {
            (B::Timestamp(b), Cell::Null) => b.append_null(),
            (B::Int32(b), Cell::Null) => b.append_null(),
            (B::UInt32(b), Cell::Null) => b.append_null(),
            (B::Int64(b), Cell::Null) => b.append_null(),
            (B::UInt64(b), Cell::Null) => b.append_null(),
            (B::Float64(b), Cell::Null) => b.append_null(),
            (B::Boolean(b), Cell::Null) => b.append_null(),
            (B::Utf8(b), Cell::Null) => b.append_null(),
            (B::Timestamp(b), Cell::Timestamp(us)) => b.append_value(us),
            (B::Int32(b), Cell::Int32(i)) => b.append_value(i),
            (B::UInt32(b), Cell::UInt32(i)) => b.append_value(i),
            (B::Int64(b), Cell::Int64(i)) => b.append_value(i),
            (B::UInt64(b), Cell::UInt64(i)) => b.append_value(i),
            (B::Float64(b), Cell::Float64(f)) => b.append_value(f),
            (B::Boolean(b), Cell::Boolean(x)) => b.append_value(x),
            (B::Utf8(b), Cell::Text(s)) => b.append_value(s),
            (_, other) => return Err(format!("value {other:?} does not fit its column")),
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            ColumnBuilder::Timestamp(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(mut b) => Arc::new(b.finish()),
            ColumnBuilder::UInt32(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::UInt64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(mut b) => Arc::new(b.finish()),
        }
    }
}
