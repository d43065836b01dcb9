//! Removing calls and dead letters by age (`retention.*`), without a table-wide DELETE:
//! monthly partitions of calls wholly past the cut are dropped; in the month the cut falls in
//! (and in calls_default) rows go in batches paged by id, each batch one short transaction
//! that removes the calls and their keys together. Also creates the partitions of the coming
//! months. Safe to interrupt and run again.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::config::RetentionSettings;

/// What a run did, step by step, as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The partition for a month exists (created now or before).
    PartitionReady(String),
    /// Creating or dropping a partition waited `retention.lock_timeout_ms` for its lock and
    /// gave up; the next run tries again.
    PartitionBusy(String),
    /// Calls (with their keys) removed from a partition so far.
    CallsDeleted {
        partition: String,
        so_far: u64,
    },
    /// Keys of a partition about to be dropped, removed so far.
    KeysDeleted {
        partition: String,
        so_far: u64,
    },
    /// A partition wholly past the cut, dropped with about this many calls.
    PartitionDropped {
        partition: String,
        calls: u64,
    },
    DeadLettersDeleted {
        so_far: u64,
    },
}

/// What a run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Calls deleted row by row.
    pub calls_deleted: u64,
    /// Calls in dropped partitions (the planner's estimate: counting would read them all).
    pub calls_dropped: u64,
    pub partitions_dropped: u64,
    pub dead_letters: u64,
}

/// A monthly partition of calls: `calls_pYYYY_MM`, holding [start, end).
struct Partition {
    name: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Partition {
    fn parse(name: &str) -> Option<Self> {
        let month = name.strip_prefix("calls_p")?;
        let start = NaiveDate::parse_from_str(&format!("{month}_01"), "%Y_%m_%d").ok()?;
        let end = start.checked_add_months(chrono::Months::new(1))?;
        let midnight = |d: NaiveDate| Some(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?));
        Some(Self {
            name: name.to_owned(),
            start: midnight(start)?,
            end: midnight(end)?,
        })
    }
}

pub async fn apply(
    pool: &PgPool,
    settings: &RetentionSettings,
    mut progress: impl FnMut(Progress),
) -> Result<Removed, sqlx::Error> {
    ensure_partitions(pool, settings, &mut progress).await?;
    let mut removed = Removed::default();
    if settings.calls_days > 0 {
        remove_calls(pool, settings, &mut removed, &mut progress).await?;
    }
    if settings.dead_letters_days > 0 {
        remove_dead_letters(pool, settings, &mut removed, &mut progress).await?;
    }
    Ok(removed)
}

/// The current month's partition and `partitions_ahead_months` more.
pub async fn ensure_partitions(
    pool: &PgPool,
    settings: &RetentionSettings,
    progress: &mut impl FnMut(Progress),
) -> Result<(), sqlx::Error> {
    for ahead in 0..=settings.partitions_ahead_months {
        let months = i32::try_from(ahead).unwrap_or(i32::MAX);
        let mut tx = locking(pool, settings).await?;
        let created: Result<String, sqlx::Error> = sqlx::query_scalar(
            "SELECT calls_partition_ensure(
                 ((now() AT TIME ZONE 'UTC') + make_interval(months => $1)) AT TIME ZONE 'UTC')",
        )
        .bind(months)
        .fetch_one(&mut *tx)
        .await;
        match created {
            Ok(name) => {
                tx.commit().await?;
                progress(Progress::PartitionReady(name));
            }
            Err(e) if lock_timed_out(&e) => {
                progress(Progress::PartitionBusy(format!("{ahead} month(s) ahead")))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn remove_calls(
    pool: &PgPool,
    settings: &RetentionSettings,
    removed: &mut Removed,
    progress: &mut impl FnMut(Progress),
) -> Result<(), sqlx::Error> {
    let cut: DateTime<Utc> = sqlx::query_scalar("SELECT now() - make_interval(days => $1)")
        .bind(i32::try_from(settings.calls_days).unwrap_or(i32::MAX))
        .fetch_one(pool)
        .await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'calls'::regclass ORDER BY c.relname",
    )
    .fetch_all(pool)
    .await?;
    let batch = i64::from(settings.batch_rows.max(1));

    // Row by row where the cut falls inside a partition, and in the catch-all.
    let cut_through = names.iter().filter(|name| {
        *name == "calls_default"
            || Partition::parse(name).is_some_and(|p| p.start < cut && cut < p.end)
    });
    for name in cut_through {
        let mut so_far = 0;
        let mut after = Uuid::nil();
        while let Some((n, last)) = batch_of(pool, name, cut, after, batch, true).await? {
            (so_far, after) = (so_far + n, last);
            progress(Progress::CallsDeleted {
                partition: name.clone(),
                so_far,
            });
        }
        removed.calls_deleted += so_far;
    }

    // Whole partitions: their keys first, so that an update of an old call meanwhile is
    // stored as a new call rather than into a month about to go; then the table itself.
    let wholly_past = names
        .iter()
        .filter_map(|name| Partition::parse(name))
        .filter(|p| p.end <= cut);
    for partition in wholly_past {
        let name = partition.name;
        let mut so_far = 0;
        let mut after = Uuid::nil();
        while let Some((n, last)) = batch_of(pool, &name, cut, after, batch, false).await? {
            (so_far, after) = (so_far + n, last);
            progress(Progress::KeysDeleted {
                partition: name.clone(),
                so_far,
            });
        }
        let estimate: f32 =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = $1::regclass")
                .bind(&name)
                .fetch_one(pool)
                .await?;
        let mut tx = locking(pool, settings).await?;
        match sqlx::query(&format!("DROP TABLE {}", quoted(&name)))
            .execute(&mut *tx)
            .await
        {
            Ok(_) => {
                tx.commit().await?;
                // Never analysed: -1. A partition holds far fewer than 2^53 rows.
                let calls = if estimate > 0.0 {
                    estimate as u64
                } else {
                    so_far
                };
                removed.calls_dropped += calls;
                removed.partitions_dropped += 1;
                progress(Progress::PartitionDropped {
                    partition: name,
                    calls,
                });
            }
            Err(e) if lock_timed_out(&e) => progress(Progress::PartitionBusy(name)),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Up to `batch` calls of `partition` stored before `cut`, the next by id after `after`: their
/// keys deleted, and the calls themselves when `rows`. Returns how many and the last id, or
/// `None` when none were left.
async fn batch_of(
    pool: &PgPool,
    partition: &str,
    cut: DateTime<Utc>,
    after: Uuid,
    batch: i64,
    rows: bool,
) -> Result<Option<(u64, Uuid)>, sqlx::Error> {
    let table = quoted(partition);
    let (n, last): (i64, Option<Uuid>) = sqlx::query_as(&format!(
        "WITH batch AS (
            SELECT id, created_at, integration_id, uid FROM {table}
            WHERE created_at < $1 AND id > $2 ORDER BY id LIMIT $3
         ), keys AS (
            DELETE FROM call_keys k USING batch b
            WHERE k.integration_id = b.integration_id AND k.uid = b.uid AND k.call_id = b.id
         ), calls AS (
            DELETE FROM {table} c USING batch b
            WHERE $4 AND c.id = b.id AND c.created_at = b.created_at
         )
         SELECT (SELECT count(*) FROM batch), (SELECT id FROM batch ORDER BY id DESC LIMIT 1)"
    ))
    .bind(cut)
    .bind(after)
    .bind(batch)
    .bind(rows)
    .fetch_one(pool)
    .await?;
    Ok(last.map(|last| (n.unsigned_abs(), last)))
}

async fn remove_dead_letters(
    pool: &PgPool,
    settings: &RetentionSettings,
    removed: &mut Removed,
    progress: &mut impl FnMut(Progress),
) -> Result<(), sqlx::Error> {
    let days = i32::try_from(settings.dead_letters_days).unwrap_or(i32::MAX);
    loop {
        let done = sqlx::query(
            "DELETE FROM dead_letters WHERE id IN (
                SELECT id FROM dead_letters WHERE last_failed_at < now() - make_interval(days => $1)
                LIMIT $2)",
        )
        .bind(days)
        .bind(i64::from(settings.batch_rows.max(1)))
        .execute(pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(());
        }
        removed.dead_letters += done.rows_affected();
        progress(Progress::DeadLettersDeleted {
            so_far: removed.dead_letters,
        });
    }
}

/// A transaction whose DDL gives up after `lock_timeout_ms` rather than queueing every
/// upsert behind its wait for the lock on calls.
async fn locking(
    pool: &PgPool,
    settings: &RetentionSettings,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(format!("{}ms", settings.lock_timeout_ms))
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

fn lock_timed_out(e: &sqlx::Error) -> bool {
    // 55P03 lock_not_available
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "55P03")
}

/// A partition's name as an SQL identifier; names come from the catalogue, quoted anyway.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_name_gives_its_month_in_utc() {
        let p = Partition::parse("calls_p2026_12").unwrap();
        assert_eq!(p.start.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(p.end.to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }

    #[test]
    fn other_tables_are_not_partitions_of_a_month() {
        assert!(Partition::parse("calls_default").is_none());
        assert!(Partition::parse("calls_p2026").is_none());
    }
}
