//! Writing a call (and its client) in one transaction; or setting it aside as a dead letter.

use serde_json::Value;
use shared::domain::{CallKey, Client};
use shared::message::CallEnvelope;
use shared::store::dead_letters::{self, NewDeadLetter};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::media::MediaStatus;
use crate::operators::Operator;

/// Upserts client and call and clears the call's queued note, all or nothing. A version
/// older than the stored one (by `received_at`, then `ingest_id`) changes nothing: two
/// workers may handle two updates of one `uid` in either order.
pub async fn store_call(
    pool: &PgPool,
    envelope: &CallEnvelope,
    key: &CallKey,
    operator: Operator,
    media: &MediaStatus,
) -> Result<(), sqlx::Error> {
    let call = &envelope.call;
    let mut tx = pool.begin().await?;
    let client_id = match &call.client {
        Some(client @ Client { id: Some(_), .. }) => {
            Some(upsert_client(&mut tx, envelope.organisation_id, client).await?)
        }
        _ => None,
    };
    sqlx::query(
        "INSERT INTO calls (
            id, integration_id, uid, uid_derived, organisation_id, operator_id, user_id, department_id,
            client_id, client, started_at, direction, duration, client_phone_number, phone_call_chain_uid,
            nps, media_url, custom_fields, transcription, media_reachable, media_http_status,
            media_content_type, media_content_length, media_insecure, media_error, media_checked_at,
            ingest_id, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
                 $20, $21, $22, $23, $24, $25, $26, $27, $28)
         ON CONFLICT (integration_id, uid) DO UPDATE SET
            operator_id = EXCLUDED.operator_id, user_id = EXCLUDED.user_id,
            department_id = EXCLUDED.department_id, client_id = EXCLUDED.client_id,
            client = EXCLUDED.client, started_at = EXCLUDED.started_at, direction = EXCLUDED.direction,
            duration = EXCLUDED.duration, client_phone_number = EXCLUDED.client_phone_number,
            phone_call_chain_uid = EXCLUDED.phone_call_chain_uid, nps = EXCLUDED.nps,
            media_url = EXCLUDED.media_url, custom_fields = EXCLUDED.custom_fields,
            transcription = EXCLUDED.transcription, media_reachable = EXCLUDED.media_reachable,
            media_http_status = EXCLUDED.media_http_status, media_content_type = EXCLUDED.media_content_type,
            media_content_length = EXCLUDED.media_content_length, media_insecure = EXCLUDED.media_insecure,
            media_error = EXCLUDED.media_error, media_checked_at = EXCLUDED.media_checked_at,
            ingest_id = EXCLUDED.ingest_id, received_at = EXCLUDED.received_at, updated_at = now()
         WHERE (calls.received_at, calls.ingest_id) < (EXCLUDED.received_at, EXCLUDED.ingest_id)",
    )
    .bind(Uuid::now_v7())
    .bind(envelope.integration_id)
    .bind(&key.uid)
    .bind(key.derived)
    .bind(envelope.organisation_id)
    .bind(call.operator_id.as_str())
    .bind(operator.user_id)
    .bind(operator.department_id)
    .bind(client_id)
    .bind(call.client.as_ref().map(client_json))
    .bind(call.started_at)
    .bind(call.direction.map(|d| d.as_str()))
    .bind(call.duration.map(|d| d.get()))
    .bind(call.client_phone_number.as_deref())
    .bind(call.phone_call_chain_uid.as_ref().map(|u| u.as_str()))
    .bind(call.nps)
    .bind(call.media_url.as_str())
    .bind(call.custom_fields.to_json())
    .bind(call.transcription.as_ref().map(|t| serde_json::to_value(t).unwrap_or(Value::Null)))
    .bind(media.reachable)
    .bind(media.http_status.map(i32::from))
    .bind(media.content_type.as_deref())
    .bind(media.content_length)
    .bind(media.insecure)
    .bind(media.error.as_deref())
    .bind(media.checked_at)
    .bind(envelope.ingest_id)
    .bind(envelope.received_at)
    .execute(&mut *tx)
    .await?;
    clear_queued_note(&mut tx, envelope.ingest_id).await?;
    tx.commit().await
}

async fn upsert_client(
    tx: &mut Transaction<'_, Postgres>,
    organisation_id: Uuid,
    client: &Client,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO clients (id, organisation_id, external_id, company_name, first_name, last_name)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (organisation_id, external_id) DO UPDATE SET
            company_name = COALESCE(EXCLUDED.company_name, clients.company_name),
            first_name = COALESCE(EXCLUDED.first_name, clients.first_name),
            last_name = COALESCE(EXCLUDED.last_name, clients.last_name),
            updated_at = now()
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(organisation_id)
    .bind(client.id.as_ref().map(|id| id.as_str()))
    .bind(client.company_name.as_deref())
    .bind(client.first_name.as_deref())
    .bind(client.last_name.as_deref())
    .fetch_one(&mut **tx)
    .await
}

fn client_json(client: &Client) -> Value {
    serde_json::json!({
        "id": client.id.as_ref().map(|id| id.as_str()),
        "company_name": client.company_name,
        "first_name": client.first_name,
        "last_name": client.last_name,
    })
}

async fn clear_queued_note(
    tx: &mut Transaction<'_, Postgres>,
    ingest_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM queued_calls WHERE ingest_id = $1")
        .bind(ingest_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records a dead letter and clears the call's queued note, all or nothing.
pub async fn set_aside(pool: &PgPool, letter: &NewDeadLetter) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    dead_letters::record(&mut tx, letter).await?;
    clear_queued_note(&mut tx, letter.ingest_id).await?;
    tx.commit().await
}
