//! Replays: dead letters back onto the work queue, as the bytes that were set aside.

use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::kept_message::{self, Encoding};
use super::Filter;
use crate::broker::{PublishError, Publisher};

/// What a replay takes.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    Matching(&'a Filter),
    /// Calls set aside for their operator whose operator is now bound and active.
    Rebound,
}

impl Selection<'_> {
    fn push_where(&self, q: &mut QueryBuilder<'_, Postgres>) {
        match self {
            Self::Matching(filter) => filter.push_where(q),
            Self::Rebound => {
                q.push(
                    " WHERE d.reason IN ('operator_not_found', 'operator_inactive')
                      AND EXISTS (SELECT 1 FROM user_account_bindings b JOIN users u ON u.id = b.user_id
                                  WHERE b.integration_id = d.integration_id
                                    AND b.integration_uid = d.operator_id
                                    AND b.active AND u.active)",
                );
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("publishing: {0}")]
    Publish(#[from] PublishError),
}

/// How many a replay would take (a dry run).
pub async fn count(pool: &PgPool, selection: Selection<'_>) -> Result<i64, sqlx::Error> {
    let mut q = QueryBuilder::new("SELECT count(*) FROM dead_letters d");
    selection.push_where(&mut q);
    q.build_query_scalar().fetch_one(pool).await
}

/// Republishes what `selection` matches onto the work queue, `batch` at a time, and retires
/// each batch only after the broker confirmed all of it, in the transaction that locked it.
/// A replay killed midway leaves its unconfirmed batch in place; running it again publishes
/// that batch again, and the worker's upsert by `uid` absorbs the repeat. Rows locked by a
/// concurrent replay are skipped; rows written after the replay began are left for the next
/// one, so a call that fails again is not replayed twice by the same run. `at_most` bounds
/// the run; `progress` hears the running total after each batch.
pub async fn replay(
    pool: &PgPool,
    publisher: &Publisher,
    selection: Selection<'_>,
    batch: usize,
    at_most: Option<u64>,
    mut progress: impl FnMut(u64),
) -> Result<u64, ReplayError> {
    let started: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(pool).await?;
    let mut replayed = 0u64;
    loop {
        let room = at_most.map_or(batch as u64, |max| (max - replayed).min(batch as u64));
        if room == 0 {
            break;
        }
        let mut tx = pool.begin().await?;
        let mut q =
            QueryBuilder::new("SELECT d.id, d.message, d.message_encoding FROM dead_letters d");
        selection.push_where(&mut q);
        q.push(" AND d.recorded_at < ").push_bind(started);
        q.push(" ORDER BY d.id LIMIT ")
            .push_bind(i64::try_from(room).unwrap_or(i64::MAX))
            .push(" FOR UPDATE OF d SKIP LOCKED");
        let rows: Vec<(Uuid, Value, String)> = q.build_query_as().fetch_all(&mut *tx).await?;
        if rows.is_empty() {
            break;
        }
        let payloads: Vec<Vec<u8>> = rows
            .iter()
            .map(|(_, message, encoding)| {
                kept_message::decode(Encoding::from_column(encoding), message)
            })
            .collect();
        try_join_all(payloads.iter().map(|p| publisher.publish(p))).await?;
        let ids: Vec<Uuid> = rows.iter().map(|(id, _, _)| *id).collect();
        sqlx::query("DELETE FROM dead_letters WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        replayed += ids.len() as u64;
        progress(replayed);
    }
    Ok(replayed)
}
