//! Organisations, departments and integrations: what the people running the service create.

use sqlx::PgPool;
use uuid::Uuid;

use crate::token;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no organisation {0}")]
    UnknownOrganisation(Uuid),
    #[error("no integration {0}")]
    UnknownIntegration(Uuid),
    #[error("the organisation already has an integration named {0:?}")]
    NameTaken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// An integration as authentication needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IntegrationAuth {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub token_hash: Vec<u8>,
    pub success_status: i16,
    /// Refuse a call or text of an unknown or inactive operator at once, as the real API
    /// does, instead of setting it aside to replay.
    pub qolio_compatible: bool,
}

/// A new integration: the token is here once and never again.
#[derive(Debug)]
pub struct NewIntegration {
    pub id: Uuid,
    pub token: String,
}

/// Returns the organisation with this name, creating it if needed.
pub async fn ensure_organisation(pool: &PgPool, name: &str) -> Result<Uuid, AccountError> {
    let id = sqlx::query_scalar(
        "INSERT INTO organisations (id, name) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(name)
    .fetch_one(pool)
    .await?;
    Ok(id)
}

pub async fn ensure_department(
    pool: &PgPool,
    organisation_id: Uuid,
    name: &str,
) -> Result<Uuid, AccountError> {
    sqlx::query_scalar(
        "INSERT INTO departments (id, organisation_id, name) VALUES ($1, $2, $3)
         ON CONFLICT (organisation_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(organisation_id)
    .bind(name)
    .fetch_one(pool)
    .await
    .map_err(|e| foreign_key(e, AccountError::UnknownOrganisation(organisation_id)))
}

/// `success_status` is 202, or 200 for clients written against the real API.
pub async fn create_integration(
    pool: &PgPool,
    organisation_id: Uuid,
    name: &str,
    success_status: u16,
) -> Result<NewIntegration, AccountError> {
    let id = Uuid::new_v4();
    let token = token::generate();
    sqlx::query(
        "INSERT INTO integrations (id, organisation_id, name, token_hash, success_status)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(organisation_id)
    .bind(name)
    .bind(token::hash(&token))
    .bind(success_status as i16)
    .execute(pool)
    .await
    .map_err(|e| foreign_key(e, AccountError::UnknownOrganisation(organisation_id)))?;
    Ok(NewIntegration { id, token })
}

pub async fn find_integration(
    pool: &PgPool,
    organisation_id: Uuid,
    name: &str,
) -> Result<Option<Uuid>, AccountError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM integrations WHERE organisation_id = $1 AND name = $2")
            .bind(organisation_id)
            .bind(name)
            .fetch_optional(pool)
            .await?,
    )
}

/// The old token stops working once gateways' auth caches expire (`auth.cache_ttl_secs`);
/// on a gateway that cannot reach Postgres meanwhile, only after `auth.stale_max_secs`.
pub async fn rotate_token(pool: &PgPool, integration_id: Uuid) -> Result<String, AccountError> {
    let token = token::generate();
    let updated = sqlx::query(
        "UPDATE integrations SET token_hash = $2, token_rotated_at = now() WHERE id = $1",
    )
    .bind(integration_id)
    .bind(token::hash(&token))
    .execute(pool)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(AccountError::UnknownIntegration(integration_id));
    }
    Ok(token)
}

pub async fn integration_auth(
    pool: &PgPool,
    integration_id: Uuid,
) -> Result<Option<IntegrationAuth>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, organisation_id, token_hash, success_status, qolio_compatible
         FROM integrations WHERE id = $1",
    )
    .bind(integration_id)
    .fetch_optional(pool)
    .await
}

fn foreign_key(e: sqlx::Error, instead: AccountError) -> AccountError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => instead,
        _ => AccountError::Database(e),
    }
}
