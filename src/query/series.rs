//! Long results (time, label columns, value columns) → Grafana's wide time series: one
//! ascending time field without duplicates, then one numeric field per value column and label
//! set, the labels on the field. This is the shape panels and alert rules (server-side
//! expressions) both accept.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use grafana_plugin_sdk::data::{Field, Frame, IntoOptField};

use super::frames::{Column, Table};

/// What a bucket without a value holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fill {
    /// Missing stays missing (latencies, ratios: no requests is not 0 ms).
    Null,
    /// Counts and sums: nothing happened = 0.
    Value(f64),
    /// Carry the last value forward.
    Previous,
}

/// A regular bucket grid covering the query range, so charts and alerts see every interval.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    pub first_us: i64,
    pub bucket_us: i64,
    pub buckets: usize,
}

impl Grid {
    /// The buckets covering `[from, to]`; `None` for a reversed or absurdly fine range.
    pub fn covering(from: DateTime<Utc>, to: DateTime<Utc>, bucket_us: i64) -> Option<Grid> {
        let bucket_us = bucket_us.max(1);
        let first_us = from.timestamp_micros().div_euclid(bucket_us) * bucket_us;
        let last_us = to.timestamp_micros().div_euclid(bucket_us) * bucket_us;
        if last_us < first_us {
            return None;
        }
        let buckets = usize::try_from((last_us - first_us) / bucket_us + 1).ok()?;
        (buckets <= 100_000).then_some(Grid { first_us, bucket_us, buckets })
    }

    fn index(&self, t: DateTime<Utc>) -> Option<usize> {
        let idx = (t.timestamp_micros() - self.first_us).div_euclid(self.bucket_us);
        usize::try_from(idx).ok().filter(|i| *i < self.buckets)
    }
}

/// Pivots `long`. The first time column is the time; text columns are labels; numeric columns
/// are values. Rows falling into the same time and label set are summed. With a grid, every
/// bucket of the range gets a row; without, the distinct times of the result do.
pub fn pivot(long: &Table, grid: Option<Grid>, fill: Fill) -> Result<Frame, String> {
    let Some(time_idx) = long.columns.iter().position(|c| matches!(c, Column::Time(_))) else {
        return Err("a time series needs a time column (TIMESTAMP); use format \"table\" otherwise".into());
    };
    if long.rows() == 0 {
        return Ok(Frame::new(""));
    }
    let Column::Time(times) = &long.columns[time_idx] else { unreachable!("checked above") };
    let label_idx: Vec<usize> = (0..long.columns.len()).filter(|i| matches!(long.columns[*i], Column::Text(_))).collect();
    let value_idx: Vec<usize> = (0..long.columns.len())
        .filter(|i| matches!(long.columns[*i], Column::Int(_) | Column::UInt(_) | Column::Float(_) | Column::Bool(_)))
        .collect();
    if value_idx.is_empty() {
        return Err("a time series needs at least one numeric column".into());
    }

    // The time axis.
    let axis: Vec<i64> = match grid {
        Some(g) => (0..g.buckets as i64).map(|i| g.first_us + i * g.bucket_us).collect(),
        None => {
            let mut t: Vec<i64> = times.iter().flatten().map(|t| t.timestamp_micros()).collect();
            t.sort_unstable();
            t.dedup();
            t
        }
    };
    let position = |t: DateTime<Utc>| -> Option<usize> {
        match grid {
            Some(g) => g.index(t),
            None => axis.binary_search(&t.timestamp_micros()).ok(),
        }
    };

    // (value column, label values) → one slot per time.
    type Key = (usize, Vec<String>);
    let mut series: BTreeMap<Key, Vec<Option<f64>>> = BTreeMap::new();
    for row in 0..long.rows() {
        let Some(slot) = times.get(row).copied().flatten().and_then(position) else {
            continue;
        };
        let labels: Vec<String> = label_idx.iter().map(|i| long.columns[*i].text_at(row).unwrap_or("").to_string()).collect();
        for v in &value_idx {
            let value = match &long.columns[*v] {
                Column::Bool(b) => b.get(row).copied().flatten().map(|b| if b { 1.0 } else { 0.0 }),
                c => c.f64_at(row),
            };
            let cells = series.entry((*v, labels.clone())).or_insert_with(|| vec![None; axis.len()]);
            if let Some(x) = value {
                cells[slot] = Some(cells[slot].unwrap_or(0.0) + x);
            }
        }
    }

    let time_values: Vec<Option<DateTime<Utc>>> = axis.iter().map(|us| DateTime::from_timestamp_micros(*us)).collect();
    let mut fields: Vec<Field> = vec![time_values.into_opt_field(long.names[time_idx].as_str())];
    for ((v, labels), mut cells) in series {
        apply_fill(&mut cells, fill);
        let label_map: BTreeMap<String, String> = label_idx.iter().zip(labels).map(|(i, value)| (long.names[*i].clone(), value)).collect();
        // Labels only, no field config: grafana-plugin-sdk 0.5.0 writes either labels or config
        // into the Arrow field metadata, never both (its match arms are swapped), and alerting
        // and legends need the labels. Panels set the unit themselves.
        let field = cells.into_opt_field(long.names[v].as_str());
        fields.push(if label_map.is_empty() { field } else { field.with_labels(label_map) });
    }
    Ok(Frame::new("").with_fields(fields))
}

fn apply_fill(cells: &mut [Option<f64>], fill: Fill) {
    match fill {
        Fill::Null => {}
        Fill::Value(x) => cells.iter_mut().filter(|c| c.is_none()).for_each(|c| *c = Some(x)),
        Fill::Previous => {
            let mut last = None;
            for c in cells.iter_mut() {
                match c {
                    Some(v) => last = Some(*v),
                    None => *c = last,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(s, 0)
    }

    fn long() -> Table {
        Table {
            names: vec!["time".into(), "model".into(), "cost".into()],
            columns: vec![
                Column::Time(vec![t(60), t(60), t(180), t(180)]),
                Column::Text(vec![Some("a".into()), Some("b".into()), Some("a".into()), Some("a".into())]),
                Column::Float(vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0)]),
            ],
        }
    }

    #[test]
    fn grid_zero_fills_every_bucket() {
        let g = Grid::covering(t(0).unwrap(), t(239).unwrap(), 60_000_000).unwrap();
        let f = pivot(&long(), Some(g), Fill::Value(0.0)).unwrap();
        assert_eq!(f.fields().len(), 3);
        assert_eq!(f.fields()[0].values().len(), 4);
        assert_eq!(f.fields()[1].labels.get("model").map(String::as_str), Some("a"));
        assert!(f.check().is_ok());
    }

    #[test]
    fn without_grid_uses_distinct_times_and_previous_fill() {
        let f = pivot(&long(), None, Fill::Previous).unwrap();
        assert_eq!(f.fields()[0].values().len(), 2, "60 and 180");
        let mut cells = vec![None, Some(1.0), None];
        apply_fill(&mut cells, Fill::Previous);
        assert_eq!(cells, [None, Some(1.0), Some(1.0)]);
    }

    #[test]
    fn needs_time_and_numbers() {
        let no_time = Table { names: vec!["x".into()], columns: vec![Column::Int(vec![Some(1)])] };
        assert!(pivot(&no_time, None, Fill::Null).unwrap_err().contains("time column"));
        assert!(Grid::covering(t(100).unwrap(), t(0).unwrap(), 1_000_000).is_none());
    }
}
