//! Writing text communications and their parts, inside the batch's transaction.
//!
//! A communication is one row per (integration, uid), updated only by a newer version (by
//! `received_at`, then `ingest_id`), as calls are. Its parts are upserted by
//! `communication_part_id` under the same rule part by part, so a chat posted again as it
//! grows gains its new parts, and a part a later post leaves out is kept.

use shared::domain::Role;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::DecodedText;
use crate::operators::Operator;

/// A text ready to be written: decoded and attributed.
pub struct ReadyText<'a> {
    pub text: &'a DecodedText,
    pub operator: Operator,
}

/// Two statements a text: texts are few next to calls. Sorted by key, so that concurrent
/// batches lock rows in one order.
pub async fn upsert_texts(
    conn: &mut PgConnection,
    texts: &[ReadyText<'_>],
) -> Result<(), sqlx::Error> {
    let mut sorted: Vec<&ReadyText> = texts.iter().collect();
    sorted.sort_by(|a, b| {
        let key = |r: &ReadyText| {
            (
                r.text.message.integration_id,
                r.text.key.uid.clone(),
                r.text.message.received_at,
                r.text.message.ingest_id,
            )
        };
        key(a).cmp(&key(b))
    });
    for ready in sorted {
        let id = upsert_communication(conn, ready).await?;
        upsert_parts(conn, id, ready.text).await?;
    }
    Ok(())
}

/// The communication's id, whether this version was written or an older or newer one stays.
async fn upsert_communication(
    conn: &mut PgConnection,
    ready: &ReadyText<'_>,
) -> Result<Uuid, sqlx::Error> {
    let (m, key) = (&ready.text.message, &ready.text.key);
    let t = &m.text;
    // The second SELECT finds the row this statement did not write (an older version than
    // what is stored); a row another transaction inserted meanwhile is found by neither, and
    // the statement is run again, to meet it.
    for _ in 0..2 {
        let found: Option<Uuid> = sqlx::query_scalar(
            "WITH upserted AS (
                INSERT INTO text_communications (
                    id, integration_id, uid, uid_derived, organisation_id, operator_id, user_id,
                    department_id, communication_type, client_id, title, source, status,
                    direction, nps, client_feedback, email, started_at, custom_fields,
                    ingest_id, received_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                        $17, $18, $19, $20, $21)
                ON CONFLICT (integration_id, uid) DO UPDATE SET
                    operator_id = EXCLUDED.operator_id, user_id = EXCLUDED.user_id,
                    department_id = EXCLUDED.department_id,
                    communication_type = EXCLUDED.communication_type,
                    client_id = EXCLUDED.client_id, title = EXCLUDED.title,
                    source = EXCLUDED.source, status = EXCLUDED.status,
                    direction = EXCLUDED.direction, nps = EXCLUDED.nps,
                    client_feedback = EXCLUDED.client_feedback, email = EXCLUDED.email,
                    started_at = EXCLUDED.started_at, custom_fields = EXCLUDED.custom_fields,
                    ingest_id = EXCLUDED.ingest_id, received_at = EXCLUDED.received_at,
                    updated_at = now()
                WHERE (text_communications.received_at, text_communications.ingest_id)
                    < (EXCLUDED.received_at, EXCLUDED.ingest_id)
                RETURNING id
             )
             SELECT id FROM upserted
             UNION ALL
             SELECT id FROM text_communications WHERE integration_id = $2 AND uid = $3
             LIMIT 1",
        )
        .bind(Uuid::now_v7())
        .bind(m.integration_id)
        .bind(&key.uid)
        .bind(key.derived)
        .bind(m.organisation_id)
        .bind(t.operator_id.as_str())
        .bind(ready.operator.user_id)
        .bind(ready.operator.department_id)
        .bind(&t.communication_type)
        .bind(t.client_id.as_ref().map(|c| c.as_str()))
        .bind(t.title.as_deref())
        .bind(t.source.as_deref())
        .bind(t.status.as_deref())
        .bind(t.direction.map(|d| d.as_str()))
        .bind(t.nps)
        .bind(t.client_feedback.as_deref())
        .bind(t.email.as_deref())
        .bind(t.started_at)
        .bind(Json(t.custom_fields.stored()))
        .bind(m.ingest_id)
        .bind(m.received_at)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(id) = found {
            return Ok(id);
        }
    }
    Err(sqlx::Error::RowNotFound)
}

async fn upsert_parts(
    conn: &mut PgConnection,
    communication_id: Uuid,
    text: &DecodedText,
) -> Result<(), sqlx::Error> {
    let parts = &text.message.text.parts;
    if parts.is_empty() {
        return Ok(());
    }
    let positions: Vec<i32> = (0..parts.len() as i32).collect();
    let ids: Vec<&str> = parts.iter().map(|p| p.id.as_str()).collect();
    let author_types: Vec<&str> = parts
        .iter()
        .map(|p| match p.author.role {
            Role::Client => "client",
            Role::Operator => "operator",
        })
        .collect();
    let author_ids: Vec<Option<&str>> = parts
        .iter()
        .map(|p| p.author.id.as_ref().map(|id| id.as_str()))
        .collect();
    let bodies: Vec<&str> = parts.iter().map(|p| p.body.as_str()).collect();
    let created: Vec<_> = parts.iter().map(|p| p.created_at).collect();
    let content_types: Vec<Option<&str>> =
        parts.iter().map(|p| p.content_type.as_deref()).collect();
    sqlx::query(
        "INSERT INTO text_parts (communication_id, part_id, position, author_type, author_id,
            body, created_at, content_type, ingest_id, received_at)
         SELECT $1, t.part_id, t.position, t.author_type, t.author_id, t.body, t.created_at,
            t.content_type, $9, $10
         FROM UNNEST($2::text[], $3::int4[], $4::text[], $5::text[], $6::text[],
                     $7::timestamptz[], $8::text[])
           AS t(part_id, position, author_type, author_id, body, created_at, content_type)
         ON CONFLICT (communication_id, part_id) DO UPDATE SET
            position = EXCLUDED.position, author_type = EXCLUDED.author_type,
            author_id = EXCLUDED.author_id, body = EXCLUDED.body,
            created_at = EXCLUDED.created_at, content_type = EXCLUDED.content_type,
            ingest_id = EXCLUDED.ingest_id, received_at = EXCLUDED.received_at
         WHERE (text_parts.received_at, text_parts.ingest_id)
             < (EXCLUDED.received_at, EXCLUDED.ingest_id)",
    )
    .bind(communication_id)
    .bind(&ids)
    .bind(&positions)
    .bind(&author_types)
    .bind(&author_ids)
    .bind(&bodies)
    .bind(&created)
    .bind(&content_types)
    .bind(text.message.ingest_id)
    .bind(text.message.received_at)
    .execute(conn)
    .await?;
    Ok(())
}
