//! The switches of an integration for clients written against the real API: answer 200
//! instead of 202, and refuse an unknown or inactive operator at once (Qolio-compatible).
//! Settable on existing integrations; gateways see a change within `auth.cache_ttl_secs`.

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::accounts::AccountError;

/// What to change; `None` leaves a switch as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct SwitchChange {
    pub success_status: Option<u16>,
    pub qolio_compatible: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Switches {
    pub success_status: i16,
    pub qolio_compatible: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("success_status must be 200 or 202, not {0}")]
    Status(u16),
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// Applies `change`; returns the switches as they now are.
pub async fn set(
    pool: &PgPool,
    integration_id: Uuid,
    change: SwitchChange,
) -> Result<Switches, SwitchError> {
    if let Some(status) = change.success_status.filter(|s| !matches!(s, 200 | 202)) {
        return Err(SwitchError::Status(status));
    }
    let updated: Option<Switches> = sqlx::query_as(
        "UPDATE integrations SET
            success_status = COALESCE($2, success_status),
            qolio_compatible = COALESCE($3, qolio_compatible)
         WHERE id = $1
         RETURNING success_status, qolio_compatible",
    )
    .bind(integration_id)
    .bind(change.success_status.map(|s| s as i16))
    .bind(change.qolio_compatible)
    .fetch_optional(pool)
    .await
    .map_err(AccountError::from)?;
    updated.ok_or(SwitchError::Account(AccountError::UnknownIntegration(
        integration_id,
    )))
}
