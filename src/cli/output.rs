//! Frames on a terminal: tables that fit its width (colour only on a terminal, and never with
//! `NO_COLOR`), CSV, or the frames' JSON. Numbers are shown by their unit as a panel would
//! (dollars, thousands separators, percentages); times in the command's time zone.
use std::io::IsTerminal;

use chrono_tz::Tz;
use comfy_table::{presets, Attribute, Cell, CellAlignment, Color, ContentArrangement, Table};
use serde_json::Value;

use crate::frame::FrameJson;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Csv,
    Json,
}

/// Whether stdout takes colour.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A time in ms since the epoch in `tz`, to the second.
pub fn local_time(ms: i64, tz: Tz) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A value as a table cell.
pub fn cell_text(v: &Value, field_type: &str, unit: Option<&str>, tz: Tz) -> String {
    match v {
        Value::Null => String::new(),
        Value::Number(n) if field_type == "time" => n.as_i64().map(|ms| local_time(ms, tz)).unwrap_or_default(),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            match unit {
                Some("currencyUSD") => format!("${f:.4}"),
                Some("percentunit") => format!("{:.1} %", f * 100.0),
                Some("percent") => format!("{f:.1} %"),
                _ if n.is_i64() || n.is_u64() => grouped(n.as_i64().unwrap_or(i64::MAX)),
                _ if f.fract() == 0.0 && f.abs() < 1e15 => grouped(f as i64),
                _ => {
                    let text = format!("{f:.4}");
                    text.trim_end_matches('0').trim_end_matches('.').to_string()
                }
            }
        }
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// A value as CSV: numbers in full, times as RFC 3339 in `tz`.
pub fn csv_text(v: &Value, field_type: &str, tz: Tz) -> String {
    match v {
        Value::Null => String::new(),
        Value::Number(n) if field_type == "time" => {
            n.as_i64().and_then(chrono::DateTime::from_timestamp_millis).map(|t| t.with_timezone(&tz).to_rfc3339()).unwrap_or_default()
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A table row: cells and whether it is a totals row (shown bold).
pub struct Row {
    pub cells: Vec<String>,
    pub strong: bool,
}

/// Rows under headers; numeric columns aligned right. Fits the terminal's width when stdout is
/// one (long cells wrap), else is as wide as its content.
pub fn table(headers: &[String], right: &[bool], rows: &[Row]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    let styled = colour();
    if std::io::stdout().is_terminal() {
        t.set_content_arrangement(ContentArrangement::Dynamic);
    } else {
        t.force_no_tty();
    }
    t.set_header(headers.iter().map(|h| {
        let c = Cell::new(h);
        if styled {
            c.add_attribute(Attribute::Bold).fg(Color::Cyan)
        } else {
            c
        }
    }));
    for row in rows {
        t.add_row(row.cells.iter().enumerate().map(|(i, text)| {
            let mut c = Cell::new(text);
            if right.get(i).copied().unwrap_or(false) {
                c = c.set_alignment(CellAlignment::Right);
            }
            if styled && row.strong {
                c = c.add_attribute(Attribute::Bold).fg(Color::Yellow);
            }
            c
        }));
    }
    t.to_string()
}

/// A frame as a table of all its fields.
pub fn frame_table(frame: &FrameJson, tz: Tz) -> String {
    let fields = &frame.schema.fields;
    let headers: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
    let right: Vec<bool> = fields.iter().map(|f| f.field_type == "number").collect();
    let rows: Vec<Row> = (0..frame.rows())
        .map(|r| Row {
            cells: fields
                .iter()
                .zip(&frame.data.values)
                .map(|(f, values)| cell_text(values.get(r).unwrap_or(&Value::Null), &f.field_type, f.unit.as_deref(), tz))
                .collect(),
            strong: false,
        })
        .collect();
    table(&headers, &right, &rows)
}

/// A frame as CSV with a header row.
pub fn frame_csv(frame: &FrameJson, tz: Tz) -> Result<String, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fields = &frame.schema.fields;
    w.write_record(fields.iter().map(|f| f.name.as_str())).map_err(|e| e.to_string())?;
    for r in 0..frame.rows() {
        let cells: Vec<String> =
            fields.iter().zip(&frame.data.values).map(|(f, v)| csv_text(v.get(r).unwrap_or(&Value::Null), &f.field_type, tz)).collect();
        w.write_record(&cells).map_err(|e| e.to_string())?;
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_follow_units() {
        let utc = chrono_tz::UTC;
        assert_eq!(cell_text(&json!(39365), "number", None, utc), "39,365");
        assert_eq!(cell_text(&json!(-1234567), "number", None, utc), "-1,234,567");
        assert_eq!(cell_text(&json!(0.048449), "number", Some("currencyUSD"), utc), "$0.0484");
        assert_eq!(cell_text(&json!(0.25), "number", Some("percentunit"), utc), "25.0 %");
        assert_eq!(cell_text(&json!(1.5), "number", Some("ms"), utc), "1.5");
        assert_eq!(cell_text(&json!(1795296000000i64), "time", None, chrono_tz::Asia::Tokyo), "2026-11-22 06:20:00");
        assert_eq!(cell_text(&Value::Null, "number", None, utc), "");
    }
}
