//! Retention: data older than a number of days is deleted in the background on a connection of
//! its own, so ingest keeps committing meanwhile (DuckDB's optimistic concurrency: appends and
//! deletes of other rows do not conflict). Freed row groups are reused by later writes.
use duckdb::Connection;

use super::StoreError;

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub events: usize,
    pub metric_points: usize,
    pub spans: usize,
}

impl Pruned {
    pub fn total(&self) -> usize {
        self.events + self.metric_points + self.spans
    }
}

/// Deletes everything older than `cutoff_us` (µs since the epoch) in one transaction.
fn delete_before(conn: &Connection, cutoff_us: i64) -> Result<Pruned, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let pruned = Pruned {
        events: tx.execute("DELETE FROM events WHERE time < make_timestamp(?)", [cutoff_us])?,
        metric_points: tx.execute("DELETE FROM metric_points WHERE time < make_timestamp(?)", [cutoff_us])?,
        spans: tx.execute("DELETE FROM spans WHERE start_time < make_timestamp(?)", [cutoff_us])?,
    };
    tx.commit()?;
    Ok(pruned)
}

/// One pass: deletes what is older than `max_age_days` (0 keeps everything).
pub fn prune(conn: &Connection, now_us: i64, max_age_days: u32) -> Result<Pruned, StoreError> {
    const DAY_US: i64 = 86_400_000_000;
    if max_age_days == 0 {
        return Ok(Pruned::default());
    }
    delete_before(conn, now_us - i64::from(max_age_days) * DAY_US)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rows::Batch;
    use crate::store::Store;

    const DAY_US: i64 = 86_400_000_000;

    async fn store_with_days(days: &[i64], per_day: usize) -> (Store, tempfile::TempDir, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "64MB").unwrap();
        let now = chrono::Utc::now().timestamp_micros();
        for &d in days {
            let mut batch = Batch::default();
            let reqs = crate::bench::generate::Generator::new(crate::bench::generate::Population::default()).sessions_with_events(per_day);
            for s in &reqs {
                batch.events.extend(crate::ingest::flatten::logs(&s.logs, now).events);
            }
            for e in &mut batch.events {
                e.time = now - d * DAY_US;
            }
            store.write(batch).await.unwrap();
        }
        (store, dir, now)
    }

    async fn days_left(store: &Store, now: i64) -> Vec<i64> {
        store
            .read(move |c| {
                let mut stmt = c.prepare("SELECT DISTINCT (? - epoch_us(time)) // 86400000000 FROM events ORDER BY 1")?;
                let rows = stmt.query_map([now], |r| r.get::<_, i64>(0))?.collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn data_older_than_the_retention_goes_and_the_rest_stays() {
        let (store, _dir, now) = store_with_days(&[40, 31, 29, 0], 200).await;
        let pruned = store.maintain(move |c| prune(c, now, 30)).await.unwrap();
        assert!(pruned.events >= 400, "{pruned:?}");
        assert_eq!(days_left(&store, now).await, [0, 29]);
    }
}
