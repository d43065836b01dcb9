//! Calls set aside: kept whole with the reason, listed and counted by filter, replayed
//! onto the work queue, purged on purpose. The CLI, the admin API and the workers'
//! automatic replay all go through here.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::broker::{PublishError, Publisher};

/// Why a call was set aside; the names are what people filter and replay by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No binding of the call's `operator_id` in its integration.
    OperatorNotFound,
    /// Bound, but the binding or the user is deactivated.
    OperatorInactive,
    /// Not a message this worker understands (unknown version, corrupt).
    Undecodable,
    /// Transient failures (database unavailable, ...) through the whole retry schedule.
    RetriesExhausted,
    /// Delivered `broker.delivery_limit` times without being settled: it crashes workers.
    Poison,
    /// Postgres refused the row itself (a constraint or a value it cannot hold).
    DatabaseRejected,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Self::OperatorNotFound,
        Self::OperatorInactive,
        Self::Undecodable,
        Self::RetriesExhausted,
        Self::Poison,
        Self::DatabaseRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OperatorNotFound => "operator_not_found",
            Self::OperatorInactive => "operator_inactive",
            Self::Undecodable => "undecodable",
            Self::RetriesExhausted => "retries_exhausted",
            Self::Poison => "poison",
            Self::DatabaseRejected => "database_rejected",
        }
    }

    /// When a call set aside for this reason can be replayed, for people reading it.
    pub fn replay_hint(self) -> &'static str {
        match self {
            Self::OperatorNotFound | Self::OperatorInactive => {
                "replayed automatically as soon as an active operator is bound to this operator_id \
                 (import_user_account_bindings)"
            }
            Self::RetriesExhausted => {
                "can be replayed now that the database is reachable again: \
                 POST /api/v1/dead_letters/replay?id=<dead letter id>"
            }
            Self::Undecodable | Self::Poison | Self::DatabaseRejected => {
                "can be replayed once a worker that handles it is deployed: \
                 POST /api/v1/dead_letters/replay?id=<dead letter id>"
            }
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown reason {s:?}; use one of {}", names.join(", "))
            })
    }
}

/// What is known of a message being set aside; `message` is kept whole for replay.
#[derive(Debug, Clone)]
pub struct NewDeadLetter {
    pub ingest_id: Uuid,
    pub integration_id: Option<Uuid>,
    pub operator_id: Option<String>,
    pub uid: Option<String>,
    pub reason: Reason,
    pub detail: String,
    pub message: Value,
    /// Attempts this record stands for (the retry schedule's length, for exhausted retries).
    pub attempts: i32,
    /// When the first attempt failed, if before now.
    pub first_failed_at: Option<DateTime<Utc>>,
}

/// The same message set aside again (a redelivery) adds attempts to its row.
pub async fn record(conn: &mut PgConnection, letter: &NewDeadLetter) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dead_letters
            (id, ingest_id, integration_id, operator_id, uid, reason, detail, message, attempts,
             first_failed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, COALESCE($10, now()))
         ON CONFLICT (ingest_id) DO UPDATE SET
            attempts = dead_letters.attempts + EXCLUDED.attempts, last_failed_at = now(),
            reason = EXCLUDED.reason, detail = EXCLUDED.detail",
    )
    .bind(Uuid::now_v7())
    .bind(letter.ingest_id)
    .bind(letter.integration_id)
    .bind(&letter.operator_id)
    .bind(&letter.uid)
    .bind(letter.reason.as_str())
    .bind(&letter.detail)
    .bind(&letter.message)
    .bind(letter.attempts)
    .bind(letter.first_failed_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Which dead letters an operation applies to; every field narrows, none means all.
/// Times compare with the last failure.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    pub id: Option<Uuid>,
    pub reason: Option<Reason>,
    pub integration_id: Option<Uuid>,
    pub operator_id: Option<String>,
    pub uid: Option<String>,
    pub failed_after: Option<DateTime<Utc>>,
    pub failed_before: Option<DateTime<Utc>>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.id.is_none()
            && self.reason.is_none()
            && self.integration_id.is_none()
            && self.operator_id.is_none()
            && self.uid.is_none()
            && self.failed_after.is_none()
            && self.failed_before.is_none()
    }

    /// Appends ` WHERE ...` over the alias `d`.
    fn push_where(&self, q: &mut QueryBuilder<'_, Postgres>) {
        q.push(" WHERE true");
        if let Some(id) = self.id {
            q.push(" AND d.id = ").push_bind(id);
        }
        if let Some(reason) = self.reason {
            q.push(" AND d.reason = ").push_bind(reason.as_str());
        }
        if let Some(id) = self.integration_id {
            q.push(" AND d.integration_id = ").push_bind(id);
        }
        if let Some(operator_id) = &self.operator_id {
            q.push(" AND d.operator_id = ")
                .push_bind(operator_id.clone());
        }
        if let Some(uid) = &self.uid {
            q.push(" AND d.uid = ").push_bind(uid.clone());
        }
        if let Some(after) = self.failed_after {
            q.push(" AND d.last_failed_at >= ").push_bind(after);
        }
        if let Some(before) = self.failed_before {
            q.push(" AND d.last_failed_at < ").push_bind(before);
        }
    }
}

/// A dead letter without its message: what listings show.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Summary {
    pub id: Uuid,
    pub ingest_id: Uuid,
    pub integration_id: Option<Uuid>,
    pub operator_id: Option<String>,
    pub uid: Option<String>,
    pub reason: String,
    pub detail: String,
    pub attempts: i32,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub summary: Summary,
    pub message: Value,
}

const SUMMARY_COLUMNS: &str = "d.id, d.ingest_id, d.integration_id, d.operator_id, d.uid, \
    d.reason, d.detail, d.attempts, d.first_failed_at, d.last_failed_at";

/// How many match, per reason.
pub async fn counts(pool: &PgPool, filter: &Filter) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let mut q = QueryBuilder::new("SELECT d.reason, count(*) FROM dead_letters d");
    filter.push_where(&mut q);
    q.push(" GROUP BY d.reason ORDER BY d.reason");
    q.build_query_as().fetch_all(pool).await
}

/// Newest first, `limit` at a time; pass the last id of a page as `before` for the next.
pub async fn list(
    pool: &PgPool,
    filter: &Filter,
    limit: i64,
    before: Option<Uuid>,
) -> Result<Vec<Summary>, sqlx::Error> {
    let mut q = QueryBuilder::new(format!("SELECT {SUMMARY_COLUMNS} FROM dead_letters d"));
    filter.push_where(&mut q);
    if let Some(before) = before {
        q.push(" AND d.id < ").push_bind(before);
    }
    q.push(" ORDER BY d.id DESC LIMIT ").push_bind(limit);
    q.build_query_as().fetch_all(pool).await
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<DeadLetter>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {SUMMARY_COLUMNS}, d.message FROM dead_letters d WHERE d.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The newest dead letter of a call, for answering GET by `uid`.
pub async fn latest_for_call(
    pool: &PgPool,
    integration_id: Uuid,
    uid: &str,
) -> Result<Option<Summary>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM dead_letters d
         WHERE d.integration_id = $1 AND d.uid = $2 ORDER BY d.last_failed_at DESC LIMIT 1"
    ))
    .bind(integration_id)
    .bind(uid)
    .fetch_optional(pool)
    .await
}

/// Deletes what matches, for good; returns how many.
pub async fn purge(pool: &PgPool, filter: &Filter) -> Result<u64, sqlx::Error> {
    let mut q = QueryBuilder::new("DELETE FROM dead_letters d");
    filter.push_where(&mut q);
    Ok(q.build().execute(pool).await?.rows_affected())
}

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
        let mut q = QueryBuilder::new("SELECT d.id, d.message FROM dead_letters d");
        selection.push_where(&mut q);
        q.push(" AND d.recorded_at < ").push_bind(started);
        q.push(" ORDER BY d.id LIMIT ")
            .push_bind(i64::try_from(room).unwrap_or(i64::MAX))
            .push(" FOR UPDATE OF d SKIP LOCKED");
        let rows: Vec<(Uuid, Value)> = q.build_query_as().fetch_all(&mut *tx).await?;
        if rows.is_empty() {
            break;
        }
        let payloads: Vec<Vec<u8>> = rows.iter().map(|(_, message)| payload(message)).collect();
        try_join_all(payloads.iter().map(|p| publisher.publish(p))).await?;
        let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
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

/// The bytes that were dead-lettered: a message kept as text (it was not JSON) goes back as
/// that text, not as a JSON string.
fn payload(message: &Value) -> Vec<u8> {
    match message {
        Value::String(text) => text.as_bytes().to_vec(),
        other => serde_json::to_vec(other).unwrap_or_default(),
    }
}
