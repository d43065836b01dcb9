//! Erasing an organisation's or one client's data on request: their stored calls (with their
//! keys), their text communications (with their parts; a client's are those of its
//! `client_id`), their clients, the dead letters whose kept message holds their data (whatever its
//! encoding), and, for an organisation, its calls' queued notes. Counted first for a dry
//! run. Calls still in the queues, or sent later, are stored again: stop the sender (rotate
//! the integration's token) before erasing an organisation.
//!
//! Users, departments, integrations and the organisation itself stay: stored calls of other
//! subjects point at them, and the organisation may go on using the service.

use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// Whose data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Organisation(Uuid),
    /// A client by the id the organisation's calls give it (`client.id`).
    Client {
        organisation: Uuid,
        external_id: String,
    },
}

/// Rows found (dry run) or removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub calls: u64,
    pub texts: u64,
    pub clients: u64,
    pub dead_letters: u64,
    pub queued_notes: u64,
}

/// Dead letters holding the subject's data: the message names the organisation (and, for a
/// client, holds its id as a JSON string), read as text, or decoded from hex (bytes past
/// ASCII escaped, so a non-ASCII client id is not found in a message that was not UTF-8).
fn push_dead_letters_where(q: &mut QueryBuilder<'_, Postgres>, subject: &Subject) {
    let (organisation, client) = match subject {
        Subject::Organisation(o) => (*o, None),
        Subject::Client {
            organisation,
            external_id,
        } => (*organisation, Some(external_id.clone())),
    };
    let text = "(CASE WHEN message_encoding = 'hex'
                 THEN encode(decode(message #>> '{}', 'hex'), 'escape')
                 WHEN message_encoding = 'text' THEN message #>> '{}'
                 ELSE message::text END)";
    q.push(" WHERE strpos(")
        .push(text)
        .push(", ")
        .push_bind(organisation.to_string())
        .push(") > 0");
    match client {
        None => {
            q.push(" OR integration_id IN (SELECT id FROM integrations WHERE organisation_id = ")
                .push_bind(organisation)
                .push(")");
        }
        Some(external_id) => {
            q.push(" AND strpos(")
                .push(text)
                .push(", to_jsonb(")
                .push_bind(external_id)
                .push("::text)::text) > 0");
        }
    }
}

pub async fn count(pool: &PgPool, subject: &Subject) -> Result<Counts, sqlx::Error> {
    let mut q = QueryBuilder::new("SELECT count(*) FROM dead_letters");
    push_dead_letters_where(&mut q, subject);
    let dead_letters: i64 = q.build_query_scalar().fetch_one(pool).await?;
    let (calls, clients, queued_notes): (i64, i64, i64) = match subject {
        Subject::Organisation(organisation) => {
            sqlx::query_as(
                "SELECT (SELECT count(*) FROM calls WHERE organisation_id = $1),
                        (SELECT count(*) FROM clients WHERE organisation_id = $1),
                        (SELECT count(*) FROM queued_calls
                         WHERE integration_id IN (SELECT id FROM integrations WHERE organisation_id = $1))",
            )
            .bind(organisation)
            .fetch_one(pool)
            .await?
        }
        Subject::Client {
            organisation,
            external_id,
        } => {
            sqlx::query_as(
                "SELECT (SELECT count(*) FROM calls WHERE organisation_id = $1 AND (client->>'id' = $2
                           OR client_id = (SELECT id FROM clients WHERE organisation_id = $1 AND external_id = $2))),
                        (SELECT count(*) FROM clients WHERE organisation_id = $1 AND external_id = $2),
                        0::int8",
            )
            .bind(organisation)
            .bind(external_id)
            .fetch_one(pool)
            .await?
        }
    };
    let (sql, external_id) = texts_of(subject);
    let texts: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM ({sql}) t"))
        .bind(subject_organisation(subject))
        .bind(external_id)
        .fetch_one(pool)
        .await?;
    Ok(Counts {
        calls: calls.unsigned_abs(),
        texts: texts.unsigned_abs(),
        clients: clients.unsigned_abs(),
        dead_letters: dead_letters.unsigned_abs(),
        queued_notes: queued_notes.unsigned_abs(),
    })
}

/// Removes what [`count`] counts. An organisation's calls go in batches of `batch_rows`
/// through their keys, each batch one transaction; `progress` hears the calls removed so far.
pub async fn erase(
    pool: &PgPool,
    subject: &Subject,
    batch_rows: u32,
    mut progress: impl FnMut(u64),
) -> Result<Counts, sqlx::Error> {
    let mut erased = Counts::default();
    match subject {
        Subject::Organisation(organisation) => {
            loop {
                let done = sqlx::query(
                    "WITH batch AS (
                        SELECT integration_id, uid, call_id, created_at FROM call_keys
                        WHERE integration_id IN (SELECT id FROM integrations WHERE organisation_id = $1)
                        LIMIT $2
                     ), calls AS (
                        DELETE FROM calls c USING batch b
                        WHERE c.id = b.call_id AND c.created_at = b.created_at
                     )
                     DELETE FROM call_keys k USING batch b
                     WHERE k.integration_id = b.integration_id AND k.uid = b.uid",
                )
                .bind(organisation)
                .bind(i64::from(batch_rows.max(1)))
                .execute(pool)
                .await?;
                if done.rows_affected() == 0 {
                    break;
                }
                erased.calls += done.rows_affected();
                progress(erased.calls);
            }
            // Calls whose key went before them (a retention run between the two).
            let stray = sqlx::query("DELETE FROM calls WHERE organisation_id = $1")
                .bind(organisation)
                .execute(pool)
                .await?;
            erased.calls += stray.rows_affected();
            erased.queued_notes = sqlx::query(
                "DELETE FROM queued_calls
                 WHERE integration_id IN (SELECT id FROM integrations WHERE organisation_id = $1)",
            )
            .bind(organisation)
            .execute(pool)
            .await?
            .rows_affected();
        }
        Subject::Client {
            organisation,
            external_id,
        } => {
            let calls: i64 = sqlx::query_scalar(
                "WITH gone AS (
                    DELETE FROM calls WHERE organisation_id = $1 AND (client->>'id' = $2
                      OR client_id = (SELECT id FROM clients WHERE organisation_id = $1 AND external_id = $2))
                    RETURNING integration_id, uid, id
                 ), keys AS (
                    DELETE FROM call_keys k USING gone g
                    WHERE k.integration_id = g.integration_id AND k.uid = g.uid AND k.call_id = g.id
                 )
                 SELECT count(*) FROM gone",
            )
            .bind(organisation)
            .bind(external_id)
            .fetch_one(pool)
            .await?;
            erased.calls = calls.unsigned_abs();
            progress(erased.calls);
        }
    }

    let (sql, external_id) = texts_of(subject);
    let mut tx = pool.begin().await?;
    sqlx::query(&format!(
        "DELETE FROM text_parts WHERE communication_id IN ({sql})"
    ))
    .bind(subject_organisation(subject))
    .bind(external_id.clone())
    .execute(&mut *tx)
    .await?;
    erased.texts = sqlx::query(&format!(
        "DELETE FROM text_communications WHERE id IN ({sql})"
    ))
    .bind(subject_organisation(subject))
    .bind(external_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;

    let mut q = QueryBuilder::new("DELETE FROM dead_letters");
    push_dead_letters_where(&mut q, subject);
    erased.dead_letters = q.build().execute(pool).await?.rows_affected();

    // Clients are otherwise never deleted (migration 0007 says why and how).
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL callq.erasure = 'on'")
        .execute(&mut *tx)
        .await?;
    let clients = match subject {
        Subject::Organisation(organisation) => {
            sqlx::query("DELETE FROM clients WHERE organisation_id = $1").bind(organisation)
        }
        Subject::Client {
            organisation,
            external_id,
        } => sqlx::query("DELETE FROM clients WHERE organisation_id = $1 AND external_id = $2")
            .bind(organisation)
            .bind(external_id),
    };
    erased.clients = clients.execute(&mut *tx).await?.rows_affected();
    tx.commit().await?;
    Ok(erased)
}

/// The ids of the subject's text communications, as a query on $1 (organisation) and $2
/// (the client's external id, or null for the whole organisation).
fn texts_of(subject: &Subject) -> (&'static str, Option<String>) {
    let sql = "SELECT id FROM text_communications
               WHERE organisation_id = $1 AND ($2::text IS NULL OR client_id = $2)";
    match subject {
        Subject::Organisation(_) => (sql, None),
        Subject::Client { external_id, .. } => (sql, Some(external_id.clone())),
    }
}

fn subject_organisation(subject: &Subject) -> Uuid {
    match subject {
        Subject::Organisation(o)
        | Subject::Client {
            organisation: o, ..
        } => *o,
    }
}
