//! Long results (time, label columns, value columns) → Grafana's wide time series: one
//! ascending time field without duplicates, then one numeric field per value column and label
//! set, the labels on the field. This is the shape panels and alert rules (server-side
//! expressions) both accept.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::table::{unit_for, Table, Units};
use crate::frame::{Field, Kind};

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

    /// The bucket of a time in µs.
    fn index(&self, t_us: i64) -> Option<usize> {
        let idx = t_us.saturating_sub(self.first_us).div_euclid(self.bucket_us);
        usize::try_from(idx).ok().filter(|i| *i < self.buckets)
    }
}

/// Pivots `long` into wide series fields. The first time column is the time; text columns are
/// labels; number and bool columns are values. Rows falling into the same time and label set
/// are summed. With a grid, every bucket of the range gets a row; without, the distinct times
/// of the result do. Each value field carries its labels and, with `Units::ByName`, its unit.
/// An empty result gives no fields ("no data").
pub fn pivot(long: &Table, grid: Option<Grid>, fill: Fill, units: Units) -> Result<Vec<Field>, String> {
    let Some(time) = long.fields.iter().find(|f| f.kind() == Kind::Time) else {
        return Err("a time series needs a time column (TIMESTAMP); use format \"table\" otherwise".into());
    };
    let labels: Vec<&Field> = long.fields.iter().filter(|f| f.kind() == Kind::Text).collect();
    let values: Vec<&Field> = long.fields.iter().filter(|f| matches!(f.kind(), Kind::Number | Kind::Bool)).collect();
    if values.is_empty() {
        return Err("a time series needs at least one numeric column".into());
    }
    if long.rows() == 0 {
        return Ok(vec![]);
    }

    // The time axis, in µs like the grid.
    let us = |row: usize| time.time_ns(row).map(|ns| ns.div_euclid(1_000));
    let axis: Vec<i64> = match grid {
        Some(g) => (0..g.buckets as i64).map(|i| g.first_us + i * g.bucket_us).collect(),
        None => {
            let mut t: Vec<i64> = (0..long.rows()).filter_map(us).collect();
            t.sort_unstable();
            t.dedup();
            t
        }
    };
    let position = |t: i64| -> Option<usize> {
        match grid {
            Some(g) => g.index(t),
            None => axis.binary_search(&t).ok(),
        }
    };

    // (value column, label values) → one slot per time.
    type Key = (usize, Vec<String>);
    let mut series: BTreeMap<Key, Vec<Option<f64>>> = BTreeMap::new();
    for row in 0..long.rows() {
        let Some(slot) = us(row).and_then(position) else {
            continue;
        };
        let label_values: Vec<String> = labels.iter().map(|f| f.text(row).unwrap_or("").to_string()).collect();
        for (v, field) in values.iter().enumerate() {
            let cells = series.entry((v, label_values.clone())).or_insert_with(|| vec![None; axis.len()]);
            if let Some(x) = field.number(row) {
                cells[slot] = Some(cells[slot].unwrap_or(0.0) + x);
            }
        }
    }

    let mut fields = vec![Field::times(time.name.clone(), axis.iter().map(|us| us.saturating_mul(1_000)).collect())];
    for ((v, label_values), mut cells) in series {
        apply_fill(&mut cells, fill);
        let name = &values[v].name;
        let label_map: BTreeMap<String, String> = labels.iter().zip(label_values).map(|(f, value)| (f.name.clone(), value)).collect();
        let unit = (units == Units::ByName).then(|| unit_for(name));
        fields.push(Field::numbers(name.clone(), cells).with_labels(label_map).with_unit(unit));
    }
    Ok(fields)
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
    use std::sync::Arc;

    fn t(s: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(s, 0)
    }

    fn long() -> Table {
        let ns = |s: i64| s * 1_000_000_000;
        Table {
            fields: vec![
                Field::times("time", vec![ns(60), ns(60), ns(180), ns(180)]),
                Field::texts("model", [Some("a"), Some("b"), Some("a"), Some("a")]),
                Field::numbers("cost_usd", vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0)]),
            ],
            notices: vec![],
        }
    }

    #[test]
    fn grid_zero_fills_every_bucket() {
        let g = Grid::covering(t(0).unwrap(), t(239).unwrap(), 60_000_000).unwrap();
        let f = pivot(&long(), Some(g), Fill::Value(0.0), Units::ByName).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].len(), 4);
        assert_eq!(f[0].time_ns(1), Some(60_000_000_000));
        assert_eq!(f[1].labels.get("model").map(String::as_str), Some("a"));
        assert_eq!(f[1].config.unit, Some("currencyUSD"), "labels and unit together");
        assert_eq!((0..4).map(|r| f[1].number(r)).collect::<Vec<_>>(), [Some(0.0), Some(1.0), Some(0.0), Some(7.0)]);
        assert_eq!(pivot(&long(), Some(g), Fill::Value(0.0), Units::None).unwrap()[1].config.unit, None);
    }

    #[test]
    fn without_grid_uses_distinct_times_and_previous_fill() {
        let f = pivot(&long(), None, Fill::Previous, Units::ByName).unwrap();
        assert_eq!(f[0].len(), 2, "60 and 180");
        let mut cells = vec![None, Some(1.0), None];
        apply_fill(&mut cells, Fill::Previous);
        assert_eq!(cells, [None, Some(1.0), Some(1.0)]);
    }

    #[test]
    fn needs_time_and_numbers() {
        let no_time = Table { fields: vec![Field::new("x", Arc::new(arrow::array::Int64Array::from(vec![1]))).unwrap()], notices: vec![] };
        assert!(pivot(&no_time, None, Fill::Null, Units::ByName).unwrap_err().contains("time column"));
        assert!(Grid::covering(t(100).unwrap(), t(0).unwrap(), 1_000_000).is_none());
    }
}
