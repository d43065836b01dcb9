//! Calls set aside: kept whole with the reason (`record`, `kept_message`), listed and counted
//! by filter, replayed onto the work queue (`replay`), purged on purpose. The CLI, the admin
//! API and the workers' automatic replay all go through here.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

mod kept_message;
mod record;
mod replay;

pub use kept_message::Encoding;
pub use record::{record, NewDeadLetter};
pub use replay::{count, replay, ReplayError, Selection};

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
    /// Accepted while Postgres was away with a new custom field key, which would take the
    /// organisation past `limits.max_field_definitions`.
    FieldDefinitionsFull,
    /// Accepted while Postgres was away with a new custom field key, meanwhile registered
    /// with a type the call's value cannot be read as.
    FieldTypeConflict,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Self::OperatorNotFound,
        Self::OperatorInactive,
        Self::Undecodable,
        Self::RetriesExhausted,
        Self::Poison,
        Self::DatabaseRejected,
        Self::FieldDefinitionsFull,
        Self::FieldTypeConflict,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OperatorNotFound => "operator_not_found",
            Self::OperatorInactive => "operator_inactive",
            Self::Undecodable => "undecodable",
            Self::RetriesExhausted => "retries_exhausted",
            Self::Poison => "poison",
            Self::DatabaseRejected => "database_rejected",
            Self::FieldDefinitionsFull => "field_definitions_full",
            Self::FieldTypeConflict => "field_type_conflict",
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
            Self::FieldDefinitionsFull => {
                "can be replayed once the organisation has room for its new keys \
                 (limits.max_field_definitions raised on the workers): \
                 POST /api/v1/dead_letters/replay?id=<dead letter id>"
            }
            Self::FieldTypeConflict => {
                "can be replayed once the key is defined as a type its value reads as \
                 (admin define-field): POST /api/v1/dead_letters/replay?id=<dead letter id>"
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

/// Which dead letters an operation applies to; every field narrows, none means all.
/// Times compare with the last failure.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    pub id: Option<Uuid>,
    pub reason: Option<Reason>,
    pub integration_id: Option<Uuid>,
    #[serde(default, deserialize_with = "storable")]
    pub operator_id: Option<String>,
    #[serde(default, deserialize_with = "storable")]
    pub uid: Option<String>,
    pub failed_after: Option<DateTime<Utc>>,
    pub failed_before: Option<DateTime<Utc>>,
}

/// Text Postgres can compare: a NUL in a query parameter fails the query itself.
fn storable<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.contains('\0') {
        return Err(serde::de::Error::custom(crate::domain::NUL_REFUSAL));
    }
    Ok(Some(text))
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

#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    #[serde(flatten)]
    pub summary: Summary,
    /// The message as it was set aside: the JSON it was (even JSON that Postgres could not
    /// hold as such), else its text, else its bytes in hex.
    pub message: Value,
    /// How Postgres keeps it: `json`, `text` or `hex`.
    pub message_encoding: &'static str,
}

#[derive(sqlx::FromRow)]
struct Kept {
    #[sqlx(flatten)]
    summary: Summary,
    message: Value,
    message_encoding: String,
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
    let kept: Option<Kept> = sqlx::query_as(&format!(
        "SELECT {SUMMARY_COLUMNS}, d.message, d.message_encoding FROM dead_letters d WHERE d.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(kept.map(|k| {
        let encoding = Encoding::from_column(&k.message_encoding);
        DeadLetter {
            summary: k.summary,
            message: kept_message::shown(encoding, &k.message),
            message_encoding: encoding.as_str(),
        }
    }))
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
