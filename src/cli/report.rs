//! `gpx_claudecode report`: daily, weekly, monthly, session, model, project, tool and 5-hour
//! window reports. Each is a typed query of the catalog (`usage_report`, `tool_success_rate`,
//! `usage_windows`) run where the data is, so a report's numbers are the panels' numbers; this
//! module only chooses the query and lays its frame out.
use chrono::Utc;
use chrono_tz::Tz;
use serde_json::{json, Map, Value};

use super::output::{self, Row};
use super::range::{self, End};
use super::{Backend, Target};
use crate::api::QueryRequest;
use crate::frame::FrameJson;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportKind {
    /// Per local day
    Daily,
    /// Per ISO week (from Monday)
    Weekly,
    /// Per month
    Monthly,
    /// Per session, with first and last activity
    Sessions,
    /// Per model
    Models,
    /// Per project (the repository, else the folder of imported history)
    Projects,
    /// Per tool: calls, failures, success rate, durations
    Tools,
    /// Claude plans' 5-hour usage windows per user
    Windows,
}

impl ReportKind {
    fn name(self) -> &'static str {
        match self {
            ReportKind::Daily => "daily",
            ReportKind::Weekly => "weekly",
            ReportKind::Monthly => "monthly",
            ReportKind::Sessions => "sessions",
            ReportKind::Models => "models",
            ReportKind::Projects => "projects",
            ReportKind::Tools => "tools",
            ReportKind::Windows => "windows",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportGroup {
    Model,
    User,
    Team,
    Project,
    Repository,
    Branch,
}

impl ReportGroup {
    /// The query's `groupBy` key.
    fn key(self) -> &'static str {
        match self {
            ReportGroup::Model => "model",
            ReportGroup::User => "user",
            ReportGroup::Team => "team",
            ReportGroup::Project => "project",
            ReportGroup::Repository => "repository",
            ReportGroup::Branch => "branch",
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  gpx_claudecode report daily
  gpx_claudecode report daily --since 2026-11-01 --by project --breakdown
  gpx_claudecode report monthly --timezone America/New_York --json
  gpx_claudecode report sessions --since now-7d
  gpx_claudecode report windows")]
pub struct ReportArgs {
    pub kind: ReportKind,
    /// First day or time: a date (2026-11-01, 20261101), now-7d, RFC 3339 [default: all history]
    #[arg(long)]
    pub since: Option<String>,
    /// Last day (inclusive) or time [default: now]
    #[arg(long)]
    pub until: Option<String>,
    /// A row per period and group (daily, weekly and monthly reports)
    #[arg(long)]
    pub by: Option<ReportGroup>,
    /// IANA time zone days, weeks and months are local to, e.g. Europe/Berlin [default: this machine's]
    #[arg(long)]
    pub timezone: Option<String>,
    /// A row per model under each row
    #[arg(long)]
    pub breakdown: bool,
    /// Print JSON (see the README for its shape)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

/// The query a report runs.
fn report_query(args: &ReportArgs, tz_name: &str) -> Result<Value, String> {
    let grouped = matches!(args.kind, ReportKind::Daily | ReportKind::Weekly | ReportKind::Monthly);
    if args.by.is_some() && !grouped {
        return Err(format!("--by applies to the daily, weekly and monthly reports; the {} report has its own rows", args.kind.name()));
    }
    let usage = |period: &str, group: Option<&str>| {
        let mut q =
            json!({"queryType": "usage_report", "period": period, "timezone": tz_name, "breakdown": args.breakdown, "totals": true});
        if let Some(g) = group {
            q["groupBy"] = json!(g);
        }
        q
    };
    let by = args.by.map(ReportGroup::key);
    Ok(match args.kind {
        ReportKind::Daily => usage("day", by),
        ReportKind::Weekly => usage("week", by),
        ReportKind::Monthly => usage("month", by),
        ReportKind::Sessions => usage("none", Some("session")),
        ReportKind::Models => usage("none", Some("model")),
        ReportKind::Projects => usage("none", Some("project")),
        ReportKind::Tools => json!({"queryType": "tool_success_rate"}),
        ReportKind::Windows => json!({"queryType": "usage_windows", "output": "windows"}),
    })
}

pub async fn run(args: ReportArgs) -> Result<(), String> {
    let tz_name = args.timezone.clone().unwrap_or_else(|| crate::query::timezone::local().name().to_string());
    let tz: Tz = crate::query::timezone::parse(&tz_name)?;
    let now = Utc::now();
    let from = match &args.since {
        Some(s) => range::parse(s, End::Start, tz, now)?,
        None => chrono::DateTime::UNIX_EPOCH,
    };
    let to = match &args.until {
        Some(s) => range::parse(s, End::End, tz, now)?,
        None => now,
    };
    let query = report_query(&args, tz.name())?;
    let backend = Backend::connect(&args.target).await?;
    backend.say_source();
    let result = backend
        .query(QueryRequest { query, from_ms: from.timestamp_millis(), to_ms: to.timestamp_millis(), interval_ms: 0, max_data_points: 0 })
        .await;
    let source = match &backend {
        Backend::File { .. } => "file",
        Backend::Process { .. } => "process",
    };
    backend.close().await;
    let frames = result?.frames;
    let Some(frame) = frames.first() else { return Err("the query returned no frame".into()) };
    for notice in frame.notices() {
        eprintln!("gpx_claudecode: {notice}");
    }
    if args.json {
        let mut doc = shape(&args, frame);
        doc["timezone"] = json!(tz.name());
        doc["from"] = json!(from.to_rfc3339());
        doc["to"] = json!(to.to_rfc3339());
        doc["source"] = json!(source);
        doc["notices"] = json!(frame.notices());
        println!("{doc}");
    } else {
        print!("{}", layout(&args, frame, tz));
        println!();
    }
    Ok(())
}

fn value<'a>(frame: &'a FrameJson, name: &str, row: usize) -> &'a Value {
    frame.column(name).and_then(|c| c.get(row)).unwrap_or(&Value::Null)
}

/// The report's group column (`--by`, or the report's own rows), if any.
fn group_column(args: &ReportArgs) -> Option<&'static str> {
    match args.kind {
        ReportKind::Sessions => Some("session"),
        ReportKind::Models => Some("model"),
        ReportKind::Projects => Some("project"),
        _ => args.by.map(ReportGroup::key),
    }
}

/// A `usage_report` row as JSON: every field, times as RFC 3339, `models` as a list.
fn row_object(frame: &FrameJson, row: usize, skip: &[&str]) -> Map<String, Value> {
    let mut o = Map::new();
    for (f, values) in frame.schema.fields.iter().zip(&frame.data.values) {
        if skip.contains(&f.name.as_str()) {
            continue;
        }
        let v = values.get(row).cloned().unwrap_or(Value::Null);
        let v = match (f.field_type.as_str(), f.name.as_str(), v) {
            ("time", _, Value::Number(n)) => {
                n.as_i64().and_then(chrono::DateTime::from_timestamp_millis).map(|t| json!(t.to_rfc3339())).unwrap_or(Value::Null)
            }
            (_, "models", Value::String(s)) => json!(s.split(", ").collect::<Vec<_>>()),
            (_, _, v) => v,
        };
        o.insert(f.name.clone(), v);
    }
    o
}

/// The `--json` document: `{"report", "rows": [{…, "breakdown": [{"model", …}]}], "totals"}`
/// for usage reports; `{"report", "rows": [{…}]}` for tools and windows.
fn shape(args: &ReportArgs, frame: &FrameJson) -> Value {
    let rows = frame.rows();
    if !is_usage(frame) {
        let list: Vec<Value> = (0..rows).map(|r| Value::Object(row_object(frame, r, &[]))).collect();
        return json!({"report": args.kind.name(), "rows": list});
    }
    let group = group_column(args);
    let mut out: Vec<Value> = Vec::new();
    let mut totals = Value::Null;
    for r in 0..rows {
        match row_kind(frame, group, r) {
            RowKind::Total => totals = Value::Object(row_object(frame, r, &["period", "model", group.unwrap_or("")])),
            RowKind::Model => {
                let m = row_object(frame, r, &["period", group.unwrap_or(""), "models"]);
                if let Some(Value::Object(parent)) = out.last_mut() {
                    if let Some(list) = parent.entry("breakdown").or_insert_with(|| json!([])).as_array_mut() {
                        list.push(Value::Object(m));
                    }
                }
            }
            RowKind::Row => {
                let skip: &[&str] = if group == Some("model") { &[] } else { &["model"] };
                out.push(Value::Object(row_object(frame, r, skip)));
            }
        }
    }
    json!({"report": args.kind.name(), "rows": out, "totals": totals})
}

/// What a `usage_report` row is: a period's or group's row, a model under it, or the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowKind {
    Row,
    Model,
    Total,
}

fn row_kind(frame: &FrameJson, group: Option<&str>, r: usize) -> RowKind {
    let has_period = frame.column("period").is_some();
    if group != Some("model") && frame.column("model").is_some() && !value(frame, "model", r).is_null() {
        return RowKind::Model;
    }
    let dims_empty = (!has_period || value(frame, "period", r).is_null()) && group.is_none_or(|g| value(frame, g, r).is_null());
    if (has_period || group.is_some()) && dims_empty {
        RowKind::Total
    } else {
        RowKind::Row
    }
}

fn is_usage(frame: &FrameJson) -> bool {
    frame.schema.name == "usage_report"
}

/// Columns a usage report prints after its dimensions: (field, header).
const USAGE_COLUMNS: &[(&str, &str)] = &[
    ("api_requests", "Calls"),
    ("input_tokens", "Input"),
    ("output_tokens", "Output"),
    ("cache_creation_tokens", "Cache write"),
    ("cache_read_tokens", "Cache read"),
    ("total_tokens", "Total tokens"),
    ("cost_usd", "Cost"),
    ("list_cost_usd", "List cost"),
];

/// The table a report prints.
fn layout(args: &ReportArgs, frame: &FrameJson, tz: Tz) -> String {
    if !is_usage(frame) {
        if frame.rows() == 0 {
            return format!("No data for the {} report in this range.", args.kind.name());
        }
        return output::frame_table(frame, tz);
    }
    let group = group_column(args);
    let has_period = frame.column("period").is_some();
    let mut headers: Vec<String> = Vec::new();
    if has_period {
        headers.push(match args.kind {
            ReportKind::Weekly => "Week".into(),
            ReportKind::Monthly => "Month".into(),
            _ => "Date".into(),
        });
    }
    if let Some(g) = group {
        let mut h = g.to_string();
        h[..1].make_ascii_uppercase();
        headers.push(h);
    }
    if group != Some("model") {
        headers.push("Models".into());
    }
    let activity = args.kind == ReportKind::Sessions;
    if activity {
        headers.push("First activity".into());
        headers.push("Last activity".into());
    }
    let dims = headers.len();
    headers.extend(USAGE_COLUMNS.iter().map(|(_, h)| h.to_string()));
    let right: Vec<bool> = (0..headers.len()).map(|i| i >= dims).collect();
    let unit = |name: &str| frame.schema.fields.iter().find(|f| f.name == name).and_then(|f| f.unit.clone());
    let text = |name: &str, r: usize| {
        let ft = frame.schema.fields.iter().find(|f| f.name == name).map(|f| f.field_type.clone()).unwrap_or_default();
        output::cell_text(value(frame, name, r), &ft, unit(name).as_deref(), tz)
    };
    let mut rows = Vec::new();
    for r in 0..frame.rows() {
        let kind = row_kind(frame, group, r);
        let (model_row, total) = (kind == RowKind::Model, kind == RowKind::Total);
        let mut cells = Vec::new();
        if has_period {
            cells.push(if total {
                "Total".into()
            } else if model_row {
                String::new()
            } else {
                text("period", r)
            });
        }
        if let Some(g) = group {
            cells.push(if total && !has_period {
                "Total".into()
            } else if model_row || total {
                String::new()
            } else {
                text(g, r)
            });
        }
        if group != Some("model") {
            cells.push(if model_row { format!("└ {}", text("model", r)) } else { text("models", r) });
        }
        if activity {
            cells.push(if model_row { String::new() } else { text("first_seen", r) });
            cells.push(if model_row { String::new() } else { text("last_seen", r) });
        }
        cells.extend(USAGE_COLUMNS.iter().map(|(name, _)| text(name, r)));
        rows.push(Row { cells, strong: total });
    }
    if rows.iter().all(|r| r.strong) && frame.column("api_requests").is_none_or(|c| c.iter().all(|v| v.as_i64() == Some(0))) {
        return format!("No model calls in this range ({} report).", args.kind.name());
    }
    output::table(&headers, &right, &rows)
}
