//! Which user (and so which department) a call's `operator_id` means for its integration.

use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    pub user_id: Uuid,
    pub department_id: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Active(Operator),
    /// No binding of this `operator_id` in the integration.
    NotFound,
    /// Bound, but the binding or the user is deactivated.
    Inactive,
}

pub async fn resolve(
    pool: &PgPool,
    integration_id: Uuid,
    operator_id: &str,
) -> Result<Resolution, sqlx::Error> {
    let row: Option<(Uuid, Option<Uuid>, bool, bool)> = sqlx::query_as(
        "SELECT u.id, u.department_id, b.active, u.active
         FROM user_account_bindings b JOIN users u ON u.id = b.user_id
         WHERE b.integration_id = $1 AND b.integration_uid = $2",
    )
    .bind(integration_id)
    .bind(operator_id)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        None => Resolution::NotFound,
        Some((user_id, department_id, true, true)) => Resolution::Active(Operator {
            user_id,
            department_id,
        }),
        Some(_) => Resolution::Inactive,
    })
}
