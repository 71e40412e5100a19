//! Retention: data older than a number of days, or the oldest data past a size, is deleted in
//! the background on a connection of its own, so ingest keeps committing meanwhile (DuckDB's
//! optimistic concurrency: appends and deletes of other rows do not conflict).
//!
//! Space comes back at a checkpoint, a whole row group (122,880 rows) at a time: the file keeps
//! its size and later writes reuse the freed blocks. Data arrives roughly in time order, so
//! deleting the oldest rows empties whole row groups.
use std::path::Path;

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

impl std::ops::AddAssign for Pruned {
    fn add_assign(&mut self, other: Pruned) {
        self.events += other.events;
        self.metric_points += other.metric_points;
        self.spans += other.spans;
    }
}

/// Deletes everything older than `cutoff_us` (µs since the epoch) in one transaction, with the
/// rollups of what it deleted.
fn delete_before(conn: &Connection, cutoff_us: i64) -> Result<Pruned, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let pruned = Pruned {
        events: tx.execute("DELETE FROM events WHERE time < make_timestamp(?)", [cutoff_us])?,
        metric_points: tx.execute("DELETE FROM metric_points WHERE time < make_timestamp(?)", [cutoff_us])?,
        spans: tx.execute("DELETE FROM spans WHERE start_time < make_timestamp(?)", [cutoff_us])?,
    };
    super::rollup::after_delete_before(&tx, cutoff_us)?;
    tx.commit()?;
    Ok(pruned)
}

/// Bytes the database holds: its blocks in use plus the WAL not yet checkpointed. Free blocks
/// inside the file are not counted: they are reused before the file grows.
pub fn stored_bytes(conn: &Connection, db_path: &Path) -> Result<u64, StoreError> {
    let blocks: i64 = conn.query_row("SELECT used_blocks * block_size FROM pragma_database_size()", [], |r| r.get(0))?;
    let mut wal = db_path.as_os_str().to_owned();
    wal.push(".wal");
    let wal_bytes = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    Ok(u64::try_from(blocks).unwrap_or(0) + wal_bytes)
}

/// Writes the WAL into the file and frees emptied row groups. `FORCE` waits for the writer's
/// transaction in flight instead of failing on it.
fn checkpoint(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("FORCE CHECKPOINT")?;
    Ok(())
}

/// What a size pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    pub pruned: Pruned,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Most delete-and-checkpoint rounds in one size pass: a round can free less than it aimed at
/// (a row group is freed only once all its rows are gone), so the next one aims again.
const TRIM_ROUNDS: usize = 8;

/// One size pass: when the database holds more than `max_bytes`, deletes the oldest data until
/// it holds about 90 % of it (the margin keeps passes from deleting a sliver every time).
/// `None` when it was within the limit.
pub fn trim_to_size(conn: &Connection, db_path: &Path, max_bytes: u64) -> Result<Option<Trimmed>, StoreError> {
    let bytes_before = stored_bytes(conn, db_path)?;
    if bytes_before <= max_bytes {
        return Ok(None);
    }
    // the WAL shrinks several-fold when checkpointed: that alone may be enough
    checkpoint(conn)?;
    let target = max_bytes - max_bytes / 10;
    let mut pruned = Pruned::default();
    let mut bytes = stored_bytes(conn, db_path)?;
    for _ in 0..TRIM_ROUNDS {
        if bytes <= max_bytes {
            break;
        }
        // the oldest rows of all three tables together, as many as the excess is of the whole
        let share = (bytes.saturating_sub(target) as f64 / bytes as f64).clamp(0.0, 1.0);
        let cutoff: Option<i64> = conn.query_row(
            "SELECT epoch_us(quantile_disc(t, ?)) FROM (
                 SELECT time AS t FROM events UNION ALL SELECT time FROM metric_points UNION ALL SELECT start_time FROM spans)",
            [share],
            |r| r.get(0),
        )?;
        let Some(cutoff) = cutoff else { break };
        // `< cutoff + 1 µs`: the quantile's own rows go too, so every round deletes something
        let round = delete_before(conn, cutoff.saturating_add(1))?;
        checkpoint(conn)?;
        pruned += round;
        bytes = stored_bytes(conn, db_path)?;
        if round.total() == 0 {
            break;
        }
    }
    Ok(Some(Trimmed { pruned, bytes_before, bytes_after: bytes }))
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
        let store = Store::open(dir.path(), &crate::store::StoreOptions::with_memory("64MB")).unwrap();
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
            store.write(batch, tokio::time::Instant::now() + std::time::Duration::from_secs(30)).await.unwrap();
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

    /// Fills `events` with `days` days of rows in time order (as exporters send them), each day
    /// `per_day` rows with incompressible text, through SQL so a debug build does it quickly.
    async fn store_with_sized_days(days: i64, per_day: i64) -> (Store, tempfile::TempDir, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::store::StoreOptions::with_memory("256MB")).unwrap();
        let now = chrono::Utc::now().timestamp_micros();
        for d in (0..days).rev() {
            let start = now - (d + 1) * DAY_US;
            store
                .maintain(move |c| {
                    c.execute(
                        "INSERT INTO events (time, received_at, event_name, session_id, attributes, resource)
                         SELECT make_timestamp(? + i * (86400000000 // ?)), now(), 'user_prompt', md5(i::VARCHAR || ?),
                                json_object('prompt', md5(i::VARCHAR) || md5((i + 1)::VARCHAR)), '{}'
                         FROM range(?) t(i)",
                        duckdb::params![start, per_day, d, per_day],
                    )?;
                    Ok(())
                })
                .await
                .unwrap();
        }
        store.maintain(|c| Ok(c.execute_batch("CHECKPOINT")?)).await.unwrap();
        (store, dir, now)
    }

    /// Over the size limit, the oldest days go and the newest stay whole; the database then
    /// holds no more than the limit. Within it, nothing is touched.
    #[tokio::test]
    async fn the_oldest_data_goes_until_the_database_fits_its_size_limit() {
        let (store, _dir, now) = store_with_sized_days(4, 150_000).await;
        let path = store.path().to_path_buf();
        let before = {
            let path = path.clone();
            store.maintain(move |c| stored_bytes(c, &path)).await.unwrap()
        };
        assert!(before > 20_000_000, "{before}");
        let unchanged = {
            let path = path.clone();
            store.maintain(move |c| trim_to_size(c, &path, before + 1)).await.unwrap()
        };
        assert_eq!(unchanged, None);

        let max = before * 6 / 10;
        let trimmed = store.maintain(move |c| trim_to_size(c, &path, max)).await.unwrap().expect("trimmed");
        assert_eq!(trimmed.bytes_before, before);
        assert!(trimmed.bytes_after <= max, "{trimmed:?} max {max}");
        // roughly the share asked for, not everything: about 40-60 % of 600,000 rows
        assert!((200_000..=400_000).contains(&trimmed.pruned.events), "{trimmed:?}");
        let days = days_left(&store, now).await;
        assert_eq!(days.first(), Some(&0), "the newest day stays: {days:?}");
        assert!(!days.contains(&3), "the oldest day goes: {days:?}");
        let newest: i64 = store
            .read(move |c| Ok(c.query_row("SELECT count(*) FROM events WHERE time >= make_timestamp(?)", [now - DAY_US], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(newest, 150_000);
    }
}
