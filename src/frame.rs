//! Grafana data frames, written the way Grafana's server reads them (grafana-plugin-sdk-go
//! `data.UnmarshalArrowFrame`): one Arrow IPC *file* per frame; schema metadata `name`, `refId`
//! and `meta` (JSON); per field its Arrow name and metadata `name`, `labels` and `config` (JSON).
//!
//! Only the Arrow types that decoder accepts can be built here, since one field of any other type
//! fails the whole response: utf8, int8–64, uint8–64, float32/64, bool, timestamp (ns, UTC) and
//! binary, which holds JSON (`json.RawMessage`, field type `other` in the browser, so arrays and
//! objects arrive as JSON rather than strings). Field config has no `displayName`: Grafana takes
//! it as final, and panels match their regexes and overrides against display names.
//!
//! The query layer builds [`Frame`]s; the plugin turns them into bytes with [`Frame::encode`].
//! Nothing else writes Arrow schemas or frame metadata.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Float64Array, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{self as adt, DataType, Field as ArrowField, Schema, TimeUnit};
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use serde::Serialize;

/// The time zone of every time field: Grafana reads times as UTC nanoseconds.
pub const UTC: &str = "UTC";

/// The data-plane frame types (sdk-go `data/frame_type.go`, grafana.com/developers/dataplane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FrameType {
    /// One time field, then number fields whose dimensions are labels.
    #[serde(rename = "timeseries-wide")]
    TimeSeriesWide,
    /// One frame per series: a time field and one number field with the series' labels.
    #[serde(rename = "timeseries-multi")]
    TimeSeriesMulti,
    /// One row of number fields (a stat), dimensions in labels.
    #[serde(rename = "numeric-wide")]
    NumericWide,
    /// SQL-table-like: string fields are dimensions, number fields are values, a row per item.
    #[serde(rename = "numeric-long")]
    NumericLong,
    /// `timestamp`, `body`, `severity`, `id`, `labels` (JSON): Explore's logs view.
    #[serde(rename = "log-lines")]
    LogLines,
    /// sdk-go's `table`: rows with no data-plane contract (listings, annotations, variables).
    #[serde(rename = "table")]
    Table,
}

impl FrameType {
    /// The contract version each type follows (`meta.typeVersion`).
    pub fn version(self) -> [u32; 2] {
        match self {
            FrameType::TimeSeriesWide | FrameType::TimeSeriesMulti | FrameType::NumericWide | FrameType::NumericLong => [0, 1],
            FrameType::LogLines | FrameType::Table => [0, 0],
        }
    }
}

/// `meta.preferredVisualisationType`: what Explore shows the frame in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum VisType {
    Graph,
    Table,
    Logs,
    Trace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
}

/// A message Grafana shows above the panel or in the query inspector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub severity: Severity,
    pub text: String,
}

impl Notice {
    pub fn warning(text: impl Into<String>) -> Notice {
        Notice { severity: Severity::Warning, text: text.into() }
    }
}

/// The frame's `meta` (sdk-go `FrameMeta`), as far as this plugin sets it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    frame_type: Option<FrameType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    type_version: Option<[u32; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executed_query_string: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<Notice>,
    #[serde(rename = "preferredVisualisationType", skip_serializing_if = "Option::is_none")]
    pub preferred_visualisation: Option<VisType>,
    /// Datasource-specific values (`meta.custom`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom: Option<serde_json::Value>,
    /// A Grafana Live channel (`ds/<uid>/<path>`) whose packets continue the frame: the browser
    /// subscribes to it and appends what arrives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl Meta {
    pub fn new(frame_type: Option<FrameType>, vis: Option<VisType>, executed: Option<String>) -> Meta {
        Meta {
            frame_type,
            type_version: frame_type.map(FrameType::version),
            executed_query_string: executed,
            preferred_visualisation: vis,
            ..Meta::default()
        }
    }

    pub fn frame_type(&self) -> Option<FrameType> {
        self.frame_type
    }

    pub fn set_frame_type(&mut self, frame_type: FrameType) {
        self.frame_type = Some(frame_type);
        self.type_version = Some(frame_type.version());
    }
}

/// A field's display properties (sdk-go `FieldConfig`). A unit set here wins over a panel's
/// default unit (not over its overrides).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
    /// Data links (sdk-go `DataLink`): Grafana offers them on every value of the field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<DataLink>,
}

impl FieldConfig {
    fn is_empty(&self) -> bool {
        self.unit.is_none() && self.links.is_empty()
    }
}

/// A data link: a URL inside Grafana, or (`internal`) a query of a datasource that Grafana opens
/// in Explore. Either may use Grafana's link variables (`${__value.raw}`, `${__data.fields.x}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataLink {
    pub title: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal: Option<InternalLink>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InternalLink {
    pub datasource_uid: String,
    pub datasource_name: String,
    pub query: serde_json::Value,
}

/// What a field holds, as Grafana's frontend types it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Time,
    Number,
    Bool,
    Text,
    /// JSON values (Arrow binary), `other` in the browser.
    Json,
}

impl Kind {
    /// The kind of an Arrow type Grafana reads, `None` for every type it rejects.
    pub fn of(data_type: &DataType) -> Option<Kind> {
        Some(match data_type {
            DataType::Timestamp(TimeUnit::Nanosecond, _) => Kind::Time,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64 => Kind::Number,
            DataType::Boolean => Kind::Bool,
            DataType::Utf8 => Kind::Text,
            DataType::Binary => Kind::Json,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("field {name:?}: Grafana cannot read Arrow type {data_type}")]
    UnsupportedType { name: String, data_type: DataType },
    #[error("frame {frame:?}: field {field:?} has {len} values, the first field {first}")]
    UnequalLengths { frame: String, field: String, len: usize, first: usize },
    #[error("frame {frame:?}: {source}")]
    Arrow { frame: String, source: arrow::error::ArrowError },
    #[error("frame {frame:?}: metadata: {message}")]
    Json { frame: String, message: String },
}

/// One column of a frame: a name, labels (the dimensions of a series), config and values of a
/// type Grafana reads.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub config: FieldConfig,
    values: ArrayRef,
}

impl Field {
    /// A field over `values`, refused when Grafana cannot read their type.
    pub fn new(name: impl Into<String>, values: ArrayRef) -> Result<Field, FrameError> {
        let name = name.into();
        if Kind::of(values.data_type()).is_none() {
            return Err(FrameError::UnsupportedType { name, data_type: values.data_type().clone() });
        }
        Ok(Field { name, labels: BTreeMap::new(), config: FieldConfig::default(), values })
    }

    /// Times in ns since the epoch.
    pub fn times(name: impl Into<String>, ns: Vec<i64>) -> Field {
        Field::of(name, Arc::new(TimestampNanosecondArray::from(ns).with_timezone(UTC)))
    }

    pub fn numbers(name: impl Into<String>, values: Vec<Option<f64>>) -> Field {
        Field::of(name, Arc::new(Float64Array::from(values)))
    }

    pub fn integers(name: impl Into<String>, values: Vec<Option<i64>>) -> Field {
        Field::of(name, Arc::new(arrow::array::Int64Array::from(values)))
    }

    pub fn texts<S: AsRef<str>>(name: impl Into<String>, values: impl IntoIterator<Item = Option<S>>) -> Field {
        Field::of(name, Arc::new(values.into_iter().collect::<StringArray>()))
    }

    /// JSON values (arrays, objects, …), which the browser receives as JSON.
    pub fn json(name: impl Into<String>, values: impl IntoIterator<Item = Option<serde_json::Value>>) -> Field {
        let bytes: Vec<Option<Vec<u8>>> = values.into_iter().map(|v| v.map(|v| v.to_string().into_bytes())).collect();
        Field::of(name, Arc::new(BinaryArray::from_iter(bytes)))
    }

    /// JSON documents given as text (DuckDB's JSON columns).
    pub fn json_documents(name: impl Into<String>, text: &StringArray) -> Field {
        Field::of(name, Arc::new(text.iter().map(|v| v.map(str::as_bytes)).collect::<BinaryArray>()))
    }

    /// Constructors whose array types are Grafana's by construction.
    fn of(name: impl Into<String>, values: ArrayRef) -> Field {
        Field { name: name.into(), labels: BTreeMap::new(), config: FieldConfig::default(), values }
    }

    pub fn with_labels(mut self, labels: BTreeMap<String, String>) -> Field {
        self.labels = labels;
        self
    }

    pub fn with_unit(mut self, unit: Option<&'static str>) -> Field {
        self.config.unit = unit;
        self
    }

    pub fn values(&self) -> &ArrayRef {
        &self.values
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn kind(&self) -> Kind {
        // `new` and the typed constructors admit only types `Kind::of` knows
        Kind::of(self.values.data_type()).unwrap_or(Kind::Text)
    }

    /// The value at `row` as a number (booleans as 0 / 1), for number and bool fields.
    pub fn number(&self, row: usize) -> Option<f64> {
        let v = &self.values;
        if row >= v.len() || v.is_null(row) {
            return None;
        }
        macro_rules! at {
            ($t:ty) => {
                Some(v.as_primitive::<$t>().value(row) as f64)
            };
        }
        match v.data_type() {
            DataType::Int8 => at!(adt::Int8Type),
            DataType::Int16 => at!(adt::Int16Type),
            DataType::Int32 => at!(adt::Int32Type),
            DataType::Int64 => at!(adt::Int64Type),
            DataType::UInt8 => at!(adt::UInt8Type),
            DataType::UInt16 => at!(adt::UInt16Type),
            DataType::UInt32 => at!(adt::UInt32Type),
            DataType::UInt64 => at!(adt::UInt64Type),
            DataType::Float32 => at!(adt::Float32Type),
            DataType::Float64 => at!(adt::Float64Type),
            DataType::Boolean => Some(if v.as_boolean().value(row) { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    /// The value at `row` of a text or JSON field.
    pub fn text(&self, row: usize) -> Option<&str> {
        let v = &self.values;
        if row >= v.len() || v.is_null(row) {
            return None;
        }
        match v.data_type() {
            DataType::Utf8 => Some(v.as_string::<i32>().value(row)),
            DataType::Binary => std::str::from_utf8(v.as_binary::<i32>().value(row)).ok(),
            _ => None,
        }
    }

    /// The value at `row` of a time field, in ns since the epoch.
    pub fn time_ns(&self, row: usize) -> Option<i64> {
        let v = &self.values;
        match v.data_type() {
            DataType::Timestamp(TimeUnit::Nanosecond, _) if row < v.len() && v.is_valid(row) => {
                Some(v.as_primitive::<adt::TimestampNanosecondType>().value(row))
            }
            _ => None,
        }
    }

    /// Keeps the first `rows` values.
    pub fn truncate(&mut self, rows: usize) {
        if rows < self.values.len() {
            self.values = self.values.slice(0, rows);
        }
    }

    fn arrow_field(&self, frame: &str) -> Result<ArrowField, FrameError> {
        let mut metadata = HashMap::from([("name".to_string(), self.name.clone())]);
        if !self.labels.is_empty() {
            metadata.insert("labels".into(), to_json(&self.labels, frame)?);
        }
        if !self.config.is_empty() {
            metadata.insert("config".into(), to_json(&self.config, frame)?);
        }
        // sdk-go fills nulls of a non-nullable field with zero values: declare every field with a null
        let nullable = self.values.null_count() > 0;
        Ok(ArrowField::new(&self.name, self.values.data_type().clone(), nullable).with_metadata(metadata))
    }
}

/// A frame: named fields of equal length with their meta.
#[derive(Debug, Clone)]
pub struct Frame {
    pub name: String,
    pub meta: Meta,
    pub fields: Vec<Field>,
}

impl Frame {
    pub fn new(name: impl Into<String>, meta: Meta, fields: Vec<Field>) -> Frame {
        Frame { name: name.into(), meta, fields }
    }

    /// "No data": a frame without fields, which Grafana shows as such.
    pub fn no_data(name: impl Into<String>, meta: Meta) -> Frame {
        Frame::new(name, meta, vec![])
    }

    pub fn rows(&self) -> usize {
        self.fields.first().map(Field::len).unwrap_or(0)
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The frame as one element of pluginv2 `DataResponse.frames`: an Arrow IPC file.
    pub fn encode(&self, ref_id: &str) -> Result<Vec<u8>, FrameError> {
        let frame = self.name.as_str();
        let rows = self.rows();
        let mut arrow_fields = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            if f.len() != rows {
                return Err(FrameError::UnequalLengths { frame: frame.into(), field: f.name.clone(), len: f.len(), first: rows });
            }
            arrow_fields.push(f.arrow_field(frame)?);
        }
        let metadata = HashMap::from([
            ("name".to_string(), self.name.clone()),
            ("refId".into(), ref_id.into()),
            ("meta".into(), to_json(&self.meta, frame)?),
        ]);
        let schema = Arc::new(Schema::new_with_metadata(arrow_fields, metadata));
        let arrow = |source| FrameError::Arrow { frame: frame.into(), source };
        let mut writer = FileWriter::try_new(Vec::new(), &schema).map_err(arrow)?;
        if !self.fields.is_empty() {
            let columns = self.fields.iter().map(|f| f.values.clone()).collect();
            let options = RecordBatchOptions::new().with_row_count(Some(rows));
            let batch = RecordBatch::try_new_with_options(schema.clone(), columns, &options).map_err(arrow)?;
            writer.write(&batch).map_err(arrow)?;
        }
        writer.into_inner().map_err(arrow)
    }
}

/// A frame as Grafana's data frame JSON (sdk-go `data.FrameToJSON`, what the browser gets):
/// `schema` (name, meta, fields with type, labels and config) and `data.values`, one array per
/// field; times in ms since the epoch. The local API and the terminal commands use it, so a
/// report reads the same numbers whether it ran in this process or in the one serving Grafana.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FrameJson {
    pub schema: SchemaJson,
    pub data: DataJson,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SchemaJson {
    pub name: String,
    #[serde(default)]
    pub meta: serde_json::Value,
    pub fields: Vec<FieldJson>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FieldJson {
    pub name: String,
    /// `time`, `number`, `boolean`, `string` or `other` (JSON), as Grafana's `FieldType`.
    #[serde(rename = "type")]
    pub field_type: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DataJson {
    pub values: Vec<Vec<serde_json::Value>>,
}

impl Field {
    /// The value at `row` as JSON: integers stay integers, times are ms, JSON is parsed.
    pub fn json_value(&self, row: usize) -> serde_json::Value {
        use serde_json::Value;
        match self.kind() {
            Kind::Time => self.time_ns(row).map(|ns| Value::from(ns.div_euclid(1_000_000))).unwrap_or(Value::Null),
            Kind::Text => self.text(row).map(Value::from).unwrap_or(Value::Null),
            Kind::Json => self.text(row).map(|t| serde_json::from_str(t).unwrap_or_else(|_| Value::from(t))).unwrap_or(Value::Null),
            Kind::Bool => self.number(row).map(|b| Value::Bool(b != 0.0)).unwrap_or(Value::Null),
            Kind::Number => match self.values.data_type() {
                DataType::Float32 | DataType::Float64 => {
                    self.number(row).and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or(Value::Null)
                }
                _ => self.number(row).map(|n| Value::from(n as i64)).unwrap_or(Value::Null),
            },
        }
    }
}

impl Frame {
    pub fn to_json(&self) -> FrameJson {
        FrameJson {
            schema: SchemaJson {
                name: self.name.clone(),
                meta: serde_json::to_value(&self.meta).unwrap_or_default(),
                fields: self
                    .fields
                    .iter()
                    .map(|f| FieldJson {
                        name: f.name.clone(),
                        field_type: f.kind().browser_type().into(),
                        labels: f.labels.clone(),
                        unit: f.config.unit.map(str::to_string),
                    })
                    .collect(),
            },
            data: DataJson { values: self.fields.iter().map(|f| (0..f.len()).map(|r| f.json_value(r)).collect()).collect() },
        }
    }
}

impl Frame {
    /// The frame as the browser receives it (sdk-go `data.FrameToJSON`): `schema` (`name`,
    /// `refId`, `meta`, fields with `type`, `typeInfo`, `labels`, `config`) when `with_schema`,
    /// and `data.values`; times in ms, with their sub-millisecond part in `data.nanos`. Grafana
    /// Live forwards stream packets in this form as they are.
    pub fn to_grafana_json(&self, ref_id: &str, with_schema: bool) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        let mut out = Map::new();
        if with_schema {
            let fields: Vec<Value> = self
                .fields
                .iter()
                .map(|f| {
                    let mut field = Map::new();
                    field.insert("name".into(), f.name.clone().into());
                    field.insert("type".into(), f.kind().browser_type().into());
                    let mut type_info = json!({"frame": f.go_type()});
                    if f.values.null_count() > 0 {
                        type_info["nullable"] = true.into();
                    }
                    field.insert("typeInfo".into(), type_info);
                    if !f.labels.is_empty() {
                        field.insert("labels".into(), json!(f.labels));
                    }
                    if !f.config.is_empty() {
                        field.insert("config".into(), serde_json::to_value(&f.config).unwrap_or_default());
                    }
                    Value::Object(field)
                })
                .collect();
            let mut schema = Map::new();
            if !self.name.is_empty() {
                schema.insert("name".into(), self.name.clone().into());
            }
            if !ref_id.is_empty() {
                schema.insert("refId".into(), ref_id.into());
            }
            schema.insert("meta".into(), serde_json::to_value(&self.meta).unwrap_or_default());
            schema.insert("fields".into(), fields.into());
            out.insert("schema".into(), Value::Object(schema));
        }
        let values: Vec<Value> = self.fields.iter().map(|f| (0..f.len()).map(|r| f.json_value(r)).collect()).collect();
        let mut data = Map::new();
        data.insert("values".into(), values.into());
        // what a time's ms drop, per time field with any (null for the other fields)
        let nanos: Vec<Value> = self
            .fields
            .iter()
            .map(|f| match f.kind() {
                Kind::Time => {
                    let rest: Vec<i64> = (0..f.len()).map(|r| f.time_ns(r).map_or(0, |ns| ns.rem_euclid(1_000_000))).collect();
                    if rest.iter().any(|n| *n != 0) {
                        json!(rest)
                    } else {
                        Value::Null
                    }
                }
                _ => Value::Null,
            })
            .collect();
        if nanos.iter().any(|n| !n.is_null()) {
            data.insert("nanos".into(), nanos.into());
        }
        out.insert("data".into(), Value::Object(data));
        Value::Object(out)
    }
}

impl Kind {
    /// The browser's `FieldType`.
    pub fn browser_type(self) -> &'static str {
        match self {
            Kind::Time => "time",
            Kind::Number => "number",
            Kind::Bool => "boolean",
            Kind::Text => "string",
            Kind::Json => "other",
        }
    }
}

impl Field {
    /// The Go type sdk-go holds the values in (`typeInfo.frame`).
    fn go_type(&self) -> &'static str {
        match self.values.data_type() {
            DataType::Timestamp(..) => "time.Time",
            DataType::Int8 => "int8",
            DataType::Int16 => "int16",
            DataType::Int32 => "int32",
            DataType::Int64 => "int64",
            DataType::UInt8 => "uint8",
            DataType::UInt16 => "uint16",
            DataType::UInt32 => "uint32",
            DataType::UInt64 => "uint64",
            DataType::Float32 => "float32",
            DataType::Float64 => "float64",
            DataType::Boolean => "bool",
            DataType::Binary => "json.RawMessage",
            _ => "string",
        }
    }
}

impl FrameJson {
    pub fn rows(&self) -> usize {
        self.data.values.first().map(Vec::len).unwrap_or(0)
    }

    /// The values of the field `name`.
    pub fn column(&self, name: &str) -> Option<&[serde_json::Value]> {
        let i = self.schema.fields.iter().position(|f| f.name == name)?;
        self.data.values.get(i).map(Vec::as_slice)
    }

    /// The warnings Grafana would show above the panel.
    pub fn notices(&self) -> Vec<String> {
        self.schema.meta["notices"]
            .as_array()
            .map(|n| n.iter().filter_map(|n| n["text"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }
}

fn to_json(value: &impl Serialize, frame: &str) -> Result<String, FrameError> {
    serde_json::to_string(value).map_err(|e| FrameError::Json { frame: frame.into(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Int64Array};
    use arrow::ipc::reader::FileReader;

    fn decode(bytes: Vec<u8>) -> (Arc<Schema>, Vec<RecordBatch>) {
        let reader = FileReader::try_new(std::io::Cursor::new(bytes), None).expect("an Arrow IPC file");
        let schema = reader.schema();
        (schema, reader.map(|b| b.expect("record batch")).collect())
    }

    #[test]
    fn writes_grafanas_schema_metadata_and_field_metadata() {
        let mut meta = Meta::new(Some(FrameType::TimeSeriesWide), Some(VisType::Graph), Some("SELECT 1".into()));
        meta.notices.push(Notice::warning("cut"));
        let frame = Frame::new(
            "cost",
            meta,
            vec![
                Field::times("time", vec![60_000_000_000, 120_000_000_000]),
                Field::numbers("cost_usd", vec![Some(1.5), None])
                    .with_labels(BTreeMap::from([("model".to_string(), "opus".to_string())]))
                    .with_unit(Some("currencyUSD")),
            ],
        );
        let (schema, batches) = decode(frame.encode("A").unwrap());
        let md = schema.metadata();
        assert_eq!((md["name"].as_str(), md["refId"].as_str()), ("cost", "A"));
        let meta: serde_json::Value = serde_json::from_str(&md["meta"]).unwrap();
        assert_eq!(
            meta,
            serde_json::json!({"type": "timeseries-wide", "typeVersion": [0, 1], "executedQueryString": "SELECT 1",
                "notices": [{"severity": "warning", "text": "cut"}], "preferredVisualisationType": "graph"})
        );
        let time = schema.field(0);
        assert_eq!(time.data_type(), &DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into())));
        assert!(!time.is_nullable());
        assert_eq!(time.metadata().get("name").map(String::as_str), Some("time"));
        assert!(!time.metadata().contains_key("labels") && !time.metadata().contains_key("config"));
        let cost = schema.field(1);
        assert_eq!((cost.name().as_str(), cost.data_type(), cost.is_nullable()), ("cost_usd", &DataType::Float64, true));
        assert_eq!(cost.metadata()["labels"], r#"{"model":"opus"}"#, "labels and config together");
        assert_eq!(cost.metadata()["config"], r#"{"unit":"currencyUSD"}"#);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].num_rows(), 2);
    }

    #[test]
    fn json_fields_are_binary_and_no_data_is_a_frame_without_fields() {
        let frame = Frame::new(
            "trace",
            Meta::default(),
            vec![
                Field::json("tags", [Some(serde_json::json!([{"key": "a", "value": 1}])), None]),
                Field::texts("id", [Some("x"), Some("y")]),
                Field::new("ok", Arc::new(BooleanArray::from(vec![true, false]))).unwrap(),
                Field::new("n", Arc::new(Int64Array::from(vec![1, 2]))).unwrap(),
            ],
        );
        let (schema, batches) = decode(frame.encode("B").unwrap());
        let kinds: Vec<_> = schema.fields().iter().map(|f| (f.data_type().clone(), f.is_nullable())).collect();
        assert_eq!(kinds, [(DataType::Binary, true), (DataType::Utf8, false), (DataType::Boolean, false), (DataType::Int64, false)]);
        let tags = batches[0].column(0).as_any().downcast_ref::<BinaryArray>().unwrap();
        assert_eq!(tags.value(0), br#"[{"key":"a","value":1}]"#);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&schema.metadata()["meta"]).unwrap(), serde_json::json!({}));

        let (schema, batches) = decode(Frame::no_data("empty", Meta::new(Some(FrameType::NumericLong), None, None)).encode("C").unwrap());
        assert!(schema.fields().is_empty() && batches.is_empty());
        assert!(schema.metadata()["meta"].contains("numeric-long"));
    }

    #[test]
    fn refuses_what_grafana_cannot_read() {
        let micros = Arc::new(arrow::array::TimestampMicrosecondArray::from(vec![1]));
        assert!(matches!(Field::new("t", micros), Err(FrameError::UnsupportedType { .. })));
        let unequal = Frame::new("f", Meta::default(), vec![Field::texts("a", [Some("x")]), Field::numbers("b", vec![])]);
        assert!(matches!(unequal.encode("A"), Err(FrameError::UnequalLengths { .. })));
    }
}
