//! Custom field definitions per organisation.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::FieldType;

pub async fn load(
    pool: &PgPool,
    organisation_id: Uuid,
) -> Result<HashMap<String, FieldType>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT key, field_type FROM custom_field_definitions WHERE organisation_id = $1",
    )
    .bind(organisation_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(key, ty)| ty.parse().ok().map(|ty| (key, ty)))
        .collect())
}

/// What became of first-seen keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Registered,
    /// Registering them would take the organisation past `max` definitions: none was.
    Full {
        defined: i64,
        max: usize,
    },
}

/// Registers first-seen keys, unless they would take the organisation past `max`
/// definitions; a key another request registered first keeps its type. Registrations of one
/// organisation take turns (a lock for the transaction), so racing requests cannot pass the
/// bound together; first-seen keys are rare, so the turns cost nothing that matters.
pub async fn register(
    pool: &PgPool,
    organisation_id: Uuid,
    fields: &[(String, FieldType)],
    max: usize,
) -> Result<Registration, sqlx::Error> {
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    let types: Vec<&str> = fields.iter().map(|(_, t)| t.as_str()).collect();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
        .bind(organisation_id)
        .execute(&mut *tx)
        .await?;
    let (defined, known): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE key = ANY($2))
         FROM custom_field_definitions WHERE organisation_id = $1",
    )
    .bind(organisation_id)
    .bind(&keys)
    .fetch_one(&mut *tx)
    .await?;
    let adding = keys.len() as i64 - known;
    if defined + adding > max as i64 {
        return Ok(Registration::Full { defined, max });
    }
    sqlx::query(
        "INSERT INTO custom_field_definitions (organisation_id, key, field_type)
         SELECT $1, k, t FROM UNNEST($2::text[], $3::text[]) AS f(k, t)
         ON CONFLICT (organisation_id, key) DO NOTHING",
    )
    .bind(organisation_id)
    .bind(&keys)
    .bind(&types)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Registration::Registered)
}

/// Defines (or redefines) a field's type ahead of its first value, e.g. a `duration`.
pub async fn define(
    pool: &PgPool,
    organisation_id: Uuid,
    key: &str,
    ty: FieldType,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO custom_field_definitions (organisation_id, key, field_type) VALUES ($1, $2, $3)
         ON CONFLICT (organisation_id, key) DO UPDATE SET field_type = EXCLUDED.field_type",
    )
    .bind(organisation_id)
    .bind(key)
    .bind(ty.as_str())
    .execute(pool)
    .await?;
    Ok(())
}
