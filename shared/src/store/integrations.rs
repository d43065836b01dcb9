//! Integrations as the people running the service see them: listed, shown, and their
//! settings changed after creation. Creating one and rotating its token are in `accounts`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::accounts::AccountError;

/// What a successful POST of a call answers: 202, or 200 for clients written against the
/// real API. Anything else is refused on parse, the same set the column's CHECK allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum SuccessStatus {
    Ok200,
    Accepted202,
}

impl SuccessStatus {
    pub fn code(self) -> u16 {
        match self {
            Self::Ok200 => 200,
            Self::Accepted202 => 202,
        }
    }
}

impl TryFrom<u16> for SuccessStatus {
    type Error = String;

    fn try_from(code: u16) -> Result<Self, String> {
        match code {
            200 => Ok(Self::Ok200),
            202 => Ok(Self::Accepted202),
            other => Err(format!("success_status must be 200 or 202, not {other}")),
        }
    }
}

impl From<SuccessStatus> for u16 {
    fn from(s: SuccessStatus) -> u16 {
        s.code()
    }
}

/// One integration's settings and state; never its token (only its hash is kept).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct IntegrationInfo {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub organisation: String,
    pub name: String,
    pub success_status: i16,
    /// Refuses a call or text of an unknown or inactive operator at once with the real API's
    /// 422, instead of setting it aside to replay once the operator is bound.
    pub qolio_compatible: bool,
    pub created_at: DateTime<Utc>,
    pub token_rotated_at: DateTime<Utc>,
    pub active_bindings: i64,
    pub inactive_bindings: i64,
}

/// What `update` changes; `None` leaves a setting as it is.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Changes {
    pub name: Option<String>,
    pub success_status: Option<SuccessStatus>,
    pub qolio_compatible: Option<bool>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.success_status.is_none() && self.qolio_compatible.is_none()
    }
}

const SELECT: &str = "
    SELECT i.id, i.organisation_id, o.name AS organisation, i.name, i.success_status,
           i.qolio_compatible, i.created_at, i.token_rotated_at,
           count(b.*) FILTER (WHERE b.active) AS active_bindings,
           count(b.*) FILTER (WHERE NOT b.active) AS inactive_bindings
    FROM integrations i
    JOIN organisations o ON o.id = i.organisation_id
    LEFT JOIN user_account_bindings b ON b.integration_id = i.id";

/// Every integration, or one organisation's, by organisation then name.
pub async fn list(
    pool: &PgPool,
    organisation_id: Option<Uuid>,
) -> Result<Vec<IntegrationInfo>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE $1::uuid IS NULL OR i.organisation_id = $1
         GROUP BY i.id, o.name ORDER BY o.name, i.name"
    ))
    .bind(organisation_id)
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<IntegrationInfo>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE i.id = $1 GROUP BY i.id, o.name"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Gateways read the success status and the Qolio-compatible switch through their auth cache, so a change answers there
/// within `auth.cache_ttl_secs` (a gateway that cannot reach Postgres meanwhile keeps the
/// old one until it can, at most `auth.stale_max_secs`).
pub async fn update(
    pool: &PgPool,
    id: Uuid,
    changes: &Changes,
) -> Result<IntegrationInfo, AccountError> {
    let updated = sqlx::query(
        "UPDATE integrations SET name = COALESCE($2, name),
                                 success_status = COALESCE($3, success_status),
                                 qolio_compatible = COALESCE($4, qolio_compatible)
         WHERE id = $1",
    )
    .bind(id)
    .bind(changes.name.as_deref())
    .bind(changes.success_status.map(|s| s.code() as i16))
    .bind(changes.qolio_compatible)
    .execute(pool)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            AccountError::NameTaken(changes.name.clone().unwrap_or_default())
        }
        _ => AccountError::Database(e),
    })?;
    if updated.rows_affected() == 0 {
        return Err(AccountError::UnknownIntegration(id));
    }
    get(pool, id)
        .await?
        .ok_or(AccountError::UnknownIntegration(id))
}

/// The URL a PBX posts its calls to, under `http.public_base_url`.
pub fn url(public_base_url: &str, id: Uuid) -> String {
    format!(
        "{}/api/v1/integrations/{id}/phone_calls",
        public_base_url.trim_end_matches('/')
    )
}
