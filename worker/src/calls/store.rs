//! Writing calls (and their clients) a batch per transaction; or setting one aside as a dead
//! letter.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::domain::custom_fields::StoredFields;
use shared::domain::{CallKey, Client, Phrase};
use shared::message::CallEnvelope;
use shared::store::dead_letters::{self, NewDeadLetter};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo};
use sqlx::types::Json;
use sqlx::{Encode, PgConnection, PgPool, Postgres, Type};
use uuid::Uuid;

use crate::operators::Operator;
use crate::texts::store::{upsert_texts, ReadyText};

/// A call ready to be written: decoded and attributed.
pub struct Ready<'a> {
    pub envelope: &'a CallEnvelope,
    pub key: CallKey,
    pub operator: Operator,
}

/// Writes a batch in one transaction: clients and calls upserted with one multi-row
/// statement each, dead letters recorded, the queued notes of every handled message
/// (`handled`) cleared. Of two versions of one call in the batch only the newest is written;
/// against the stored row, a version older than it (by `received_at`, then `ingest_id`)
/// changes nothing, since two workers may take two updates of one `uid` in either order.
/// Returns how many calls were written.
pub async fn write_batch(
    pool: &PgPool,
    ready: &[Ready<'_>],
    letters: &[NewDeadLetter],
    handled: &[Uuid],
) -> Result<usize, sqlx::Error> {
    write_batch_with_texts(pool, ready, &[], letters, handled).await
}

/// `write_batch`, with the batch's text communications in the same transaction.
pub async fn write_batch_with_texts(
    pool: &PgPool,
    ready: &[Ready<'_>],
    texts: &[ReadyText<'_>],
    letters: &[NewDeadLetter],
    handled: &[Uuid],
) -> Result<usize, sqlx::Error> {
    let calls = newest_per_call(ready);
    // Before the transaction and outside it: clients recur across calls, and concurrent
    // batches would otherwise queue behind each other's locks on them until commit. An
    // upserted client whose call then fails is harmless: the retry upserts it again.
    let client_ids = upsert_clients(pool, &calls).await?;
    let mut tx = pool.begin().await?;
    for letter in letters {
        dead_letters::record(&mut tx, letter).await?;
    }
    if !calls.is_empty() {
        upsert_calls(&mut tx, &calls, &client_ids).await?;
    }
    if !texts.is_empty() {
        upsert_texts(&mut tx, texts).await?;
    }
    sqlx::query("DELETE FROM queued_calls WHERE ingest_id = ANY($1)")
        .bind(handled)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(calls.len())
}

/// Sorted by key, so that concurrent batches lock rows in one order and rarely deadlock.
fn newest_per_call<'r, 'a>(ready: &'r [Ready<'a>]) -> Vec<&'r Ready<'a>> {
    let mut newest: HashMap<(Uuid, &str), &Ready> = HashMap::with_capacity(ready.len());
    for r in ready {
        let version = |r: &Ready| (r.envelope.received_at, r.envelope.ingest_id);
        newest
            .entry((r.envelope.integration_id, r.key.uid.as_str()))
            .and_modify(|kept| {
                if version(r) > version(kept) {
                    *kept = r;
                }
            })
            .or_insert(r);
    }
    let mut calls: Vec<&Ready> = newest.into_values().collect();
    calls.sort_by(|a, b| {
        (a.envelope.integration_id, &a.key.uid).cmp(&(b.envelope.integration_id, &b.key.uid))
    });
    calls
}

/// (organisation, `client.id`)
pub type ClientKey = (Uuid, String);

/// Clients named by the batch's calls (the newest call's version of each), upserted at
/// once; names never become null, and a row whose names would not change is not written.
/// Returns their ids.
async fn upsert_clients(
    pool: &PgPool,
    calls: &[&Ready<'_>],
) -> Result<HashMap<ClientKey, Uuid>, sqlx::Error> {
    let mut newest: BTreeMap<ClientKey, (&Client, (DateTime<Utc>, Uuid))> = BTreeMap::new();
    for r in calls {
        let Some(client @ Client { id: Some(id), .. }) = &r.envelope.call.client else {
            continue;
        };
        let version = (r.envelope.received_at, r.envelope.ingest_id);
        let key = (r.envelope.organisation_id, id.as_str().to_owned());
        match newest.get(&key) {
            Some((_, kept)) if *kept >= version => {}
            _ => {
                newest.insert(key, (client, version));
            }
        }
    }
    if newest.is_empty() {
        return Ok(HashMap::new());
    }
    let mut ids = Vec::with_capacity(newest.len());
    let mut organisations = Vec::with_capacity(newest.len());
    let mut external_ids = Vec::with_capacity(newest.len());
    let (mut companies, mut firsts, mut lasts) = (Vec::new(), Vec::new(), Vec::new());
    for ((organisation_id, external_id), (client, _)) in &newest {
        ids.push(Uuid::now_v7());
        organisations.push(*organisation_id);
        external_ids.push(external_id.as_str());
        companies.push(client.company_name.as_deref());
        firsts.push(client.first_name.as_deref());
        lasts.push(client.last_name.as_deref());
    }
    // Unchanged rows are not returned by the upsert; the second part finds them. A row
    // another batch inserted after this statement's snapshot is found by neither and
    // looked up again below.
    let rows: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "WITH input AS (
            SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[])
                AS t(id, organisation_id, external_id, company_name, first_name, last_name)
         ), upserted AS (
            INSERT INTO clients (id, organisation_id, external_id, company_name, first_name, last_name)
            SELECT * FROM input
            ON CONFLICT (organisation_id, external_id) DO UPDATE SET
               company_name = COALESCE(EXCLUDED.company_name, clients.company_name),
               first_name = COALESCE(EXCLUDED.first_name, clients.first_name),
               last_name = COALESCE(EXCLUDED.last_name, clients.last_name),
               updated_at = now()
            WHERE (clients.company_name, clients.first_name, clients.last_name) IS DISTINCT FROM
                  (COALESCE(EXCLUDED.company_name, clients.company_name),
                   COALESCE(EXCLUDED.first_name, clients.first_name),
                   COALESCE(EXCLUDED.last_name, clients.last_name))
            RETURNING id, organisation_id, external_id
         )
         SELECT id, organisation_id, external_id FROM upserted
         UNION ALL
         SELECT c.id, c.organisation_id, c.external_id
         FROM input i JOIN clients c
           ON c.organisation_id = i.organisation_id AND c.external_id = i.external_id",
    )
    .bind(&ids)
    .bind(&organisations)
    .bind(&external_ids)
    .bind(&companies)
    .bind(&firsts)
    .bind(&lasts)
    .fetch_all(pool)
    .await?;
    let mut found: HashMap<ClientKey, Uuid> = rows
        .into_iter()
        .map(|(id, organisation_id, external_id)| ((organisation_id, external_id), id))
        .collect();
    let missing: Vec<&ClientKey> = newest.keys().filter(|k| !found.contains_key(*k)).collect();
    if !missing.is_empty() {
        let organisations: Vec<Uuid> = missing.iter().map(|(o, _)| *o).collect();
        let external_ids: Vec<&str> = missing.iter().map(|(_, e)| e.as_str()).collect();
        let rows: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
            "SELECT c.id, c.organisation_id, c.external_id
             FROM UNNEST($1::uuid[], $2::text[]) AS k(organisation_id, external_id)
             JOIN clients c ON c.organisation_id = k.organisation_id AND c.external_id = k.external_id",
        )
        .bind(&organisations)
        .bind(&external_ids)
        .fetch_all(pool)
        .await?;
        found.extend(rows.into_iter().map(|(id, o, e)| ((o, e), id)));
    }
    Ok(found)
}

/// One multi-row statement. Public for the benchmark, whose raw upsert limit must be this
/// very statement with these very rows.
pub async fn upsert_calls(
    conn: &mut PgConnection,
    calls: &[&Ready<'_>],
    client_ids: &HashMap<ClientKey, Uuid>,
) -> Result<(), sqlx::Error> {
    let n = calls.len();
    // The media columns stay as they are while the URL does; a new URL is 'pending' again
    // until its own probe, and the results of probes of the old one no longer apply.
    let mut c = Columns::with_capacity(n);
    for r in calls {
        let (envelope, call) = (r.envelope, &r.envelope.call);
        c.id.push(Uuid::now_v7());
        c.integration_id.push(envelope.integration_id);
        c.uid.push(r.key.uid.as_str());
        c.uid_derived.push(r.key.derived);
        c.organisation_id.push(envelope.organisation_id);
        c.operator_id.push(call.operator_id.as_str());
        c.user_id.push(r.operator.user_id);
        c.department_id.push(r.operator.department_id);
        c.client_id.push(call.client.as_ref().and_then(|client| {
            let id = client.id.as_ref()?;
            client_ids
                .get(&(envelope.organisation_id, id.as_str().to_owned()))
                .copied()
        }));
        c.client.push(
            call.client
                .as_ref()
                .map(|client| Jsonb(StoredClient::of(client))),
        );
        c.started_at.push(call.started_at);
        c.direction.push(call.direction.map(|d| d.as_str()));
        c.duration.push(call.duration.map(|d| d.get()));
        c.client_phone_number
            .push(call.client_phone_number.as_deref());
        c.phone_call_chain_uid
            .push(call.phone_call_chain_uid.as_ref().map(|u| u.as_str()));
        c.nps.push(call.nps);
        c.media_url.push(call.media_url.as_str());
        c.custom_fields.push(Jsonb(call.custom_fields.stored()));
        c.transcription
            .push(call.transcription.as_deref().map(Jsonb));
        c.media_insecure
            .push(call.media_url.url().scheme() == "http");
        c.ingest_id.push(envelope.ingest_id);
        c.received_at.push(envelope.received_at);
    }
    // The key is claimed first: a new one takes this row's id and the statement's time (the
    // month partition the call lives in from now on); a known one is locked and names where
    // its call lives, so the insert below meets that row and updates it. A key another batch
    // is claiming makes this one wait for it, then meet its row.
    sqlx::query(
        "WITH input AS (
            SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::bool[], $5::uuid[], $6::text[],
                $7::uuid[], $8::uuid[], $9::uuid[], $10::jsonb[], $11::timestamptz[], $12::text[],
                $13::float8[], $14::text[], $15::text[], $16::float8[], $17::text[], $18::jsonb[],
                $19::jsonb[], $20::bool[], $21::uuid[], $22::timestamptz[])
              AS t(id, integration_id, uid, uid_derived, organisation_id, operator_id, user_id,
                   department_id, client_id, client, started_at, direction, duration,
                   client_phone_number, phone_call_chain_uid, nps, media_url, custom_fields,
                   transcription, media_insecure, ingest_id, received_at)
         ), keys AS (
            INSERT INTO call_keys (integration_id, uid, call_id, created_at)
            SELECT integration_id, uid, id, now() FROM input
            ON CONFLICT (integration_id, uid) DO UPDATE SET uid = EXCLUDED.uid
            RETURNING integration_id, uid, call_id, created_at
         )
         INSERT INTO calls (
            id, created_at, integration_id, uid, uid_derived, organisation_id, operator_id, user_id,
            department_id, client_id, client, started_at, direction, duration, client_phone_number,
            phone_call_chain_uid, nps, media_url, custom_fields, transcription, media_insecure,
            ingest_id, received_at)
         SELECT k.call_id, k.created_at, i.integration_id, i.uid, i.uid_derived, i.organisation_id,
            i.operator_id, i.user_id, i.department_id, i.client_id, i.client, i.started_at,
            i.direction, i.duration, i.client_phone_number, i.phone_call_chain_uid, i.nps,
            i.media_url, i.custom_fields, i.transcription, i.media_insecure, i.ingest_id,
            i.received_at
         FROM input i JOIN keys k ON k.integration_id = i.integration_id AND k.uid = i.uid
         ON CONFLICT (id, created_at) DO UPDATE SET
            operator_id = EXCLUDED.operator_id, user_id = EXCLUDED.user_id,
            department_id = EXCLUDED.department_id, client_id = EXCLUDED.client_id,
            client = EXCLUDED.client, started_at = EXCLUDED.started_at, direction = EXCLUDED.direction,
            duration = EXCLUDED.duration, client_phone_number = EXCLUDED.client_phone_number,
            phone_call_chain_uid = EXCLUDED.phone_call_chain_uid, nps = EXCLUDED.nps,
            media_url = EXCLUDED.media_url, custom_fields = EXCLUDED.custom_fields,
            transcription = EXCLUDED.transcription,
            media_status = CASE WHEN calls.media_url = EXCLUDED.media_url THEN calls.media_status ELSE 'pending' END,
            media_reachable = CASE WHEN calls.media_url = EXCLUDED.media_url THEN calls.media_reachable END,
            media_http_status = CASE WHEN calls.media_url = EXCLUDED.media_url THEN calls.media_http_status END,
            media_content_type = CASE WHEN calls.media_url = EXCLUDED.media_url THEN calls.media_content_type END,
            media_content_length = CASE WHEN calls.media_url = EXCLUDED.media_url THEN calls.media_content_length END,
            media_insecure = CASE WHEN calls.media_url = EXCLUDED.media_url THEN calls.media_insecure ELSE EXCLUDED.media_insecure END,
            media_error = CASE WHEN calls.media_url = EXCLUDED.media_url THEN calls.media_error END,
            media_checked_at = CASE WHEN calls.media_url = EXCLUDED.media_url THEN calls.media_checked_at END,
            media_probe_attempts = CASE WHEN calls.media_url = EXCLUDED.media_url THEN calls.media_probe_attempts ELSE 0 END,
            media_next_probe_at = CASE WHEN calls.media_url = EXCLUDED.media_url THEN calls.media_next_probe_at END,
            ingest_id = EXCLUDED.ingest_id, received_at = EXCLUDED.received_at, updated_at = now()
         WHERE (calls.received_at, calls.ingest_id) < (EXCLUDED.received_at, EXCLUDED.ingest_id)",
    )
    .bind(c.id)
    .bind(c.integration_id)
    .bind(c.uid)
    .bind(c.uid_derived)
    .bind(c.organisation_id)
    .bind(c.operator_id)
    .bind(c.user_id)
    .bind(c.department_id)
    .bind(c.client_id)
    .bind(c.client)
    .bind(c.started_at)
    .bind(c.direction)
    .bind(c.duration)
    .bind(c.client_phone_number)
    .bind(c.phone_call_chain_uid)
    .bind(c.nps)
    .bind(c.media_url)
    .bind(c.custom_fields)
    .bind(c.transcription)
    .bind(c.media_insecure)
    .bind(c.ingest_id)
    .bind(c.received_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A jsonb parameter, as sqlx's `Json` writes it but encoded by sonic-rs, for the reason
/// `CallMessage::to_bytes` gives: a batch's custom fields, transcriptions and clients were
/// most of the worker's statement encoding.
struct Jsonb<T>(T);

impl<T> Type<Postgres> for Jsonb<T> {
    fn type_info() -> PgTypeInfo {
        Json::<()>::type_info()
    }
}

impl<T> PgHasArrayType for Jsonb<T> {
    fn array_type_info() -> PgTypeInfo {
        Json::<()>::array_type_info()
    }
}

impl<T: Serialize> Encode<'_, Postgres> for Jsonb<T> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        // jsonb's binary form: a version byte, then the text.
        buf.push(1);
        sonic_rs::to_writer(&mut **buf, &self.0)?;
        Ok(IsNull::No)
    }
}

/// One array per column of `calls`, for UNNEST; every one gets exactly one entry per call.
struct Columns<'a> {
    id: Vec<Uuid>,
    integration_id: Vec<Uuid>,
    uid: Vec<&'a str>,
    uid_derived: Vec<bool>,
    organisation_id: Vec<Uuid>,
    operator_id: Vec<&'a str>,
    user_id: Vec<Uuid>,
    department_id: Vec<Option<Uuid>>,
    client_id: Vec<Option<Uuid>>,
    client: Vec<Option<Jsonb<StoredClient<'a>>>>,
    started_at: Vec<DateTime<Utc>>,
    direction: Vec<Option<&'static str>>,
    duration: Vec<Option<f64>>,
    client_phone_number: Vec<Option<&'a str>>,
    phone_call_chain_uid: Vec<Option<&'a str>>,
    nps: Vec<Option<f64>>,
    media_url: Vec<&'a str>,
    custom_fields: Vec<Jsonb<StoredFields<'a>>>,
    transcription: Vec<Option<Jsonb<&'a [Phrase]>>>,
    media_insecure: Vec<bool>,
    ingest_id: Vec<Uuid>,
    received_at: Vec<DateTime<Utc>>,
}

impl Columns<'_> {
    fn with_capacity(n: usize) -> Self {
        Self {
            id: Vec::with_capacity(n),
            integration_id: Vec::with_capacity(n),
            uid: Vec::with_capacity(n),
            uid_derived: Vec::with_capacity(n),
            organisation_id: Vec::with_capacity(n),
            operator_id: Vec::with_capacity(n),
            user_id: Vec::with_capacity(n),
            department_id: Vec::with_capacity(n),
            client_id: Vec::with_capacity(n),
            client: Vec::with_capacity(n),
            started_at: Vec::with_capacity(n),
            direction: Vec::with_capacity(n),
            duration: Vec::with_capacity(n),
            client_phone_number: Vec::with_capacity(n),
            phone_call_chain_uid: Vec::with_capacity(n),
            nps: Vec::with_capacity(n),
            media_url: Vec::with_capacity(n),
            custom_fields: Vec::with_capacity(n),
            transcription: Vec::with_capacity(n),
            media_insecure: Vec::with_capacity(n),
            ingest_id: Vec::with_capacity(n),
            received_at: Vec::with_capacity(n),
        }
    }
}

/// The client as the call keeps it, whether or not it has an id to be upserted by.
#[derive(Serialize)]
struct StoredClient<'a> {
    id: Option<&'a str>,
    company_name: Option<&'a str>,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
}

impl<'a> StoredClient<'a> {
    fn of(client: &'a Client) -> Self {
        Self {
            id: client.id.as_ref().map(|id| id.as_str()),
            company_name: client.company_name.as_deref(),
            first_name: client.first_name.as_deref(),
            last_name: client.last_name.as_deref(),
        }
    }
}

/// Records dead letters and clears their calls' queued notes, all or nothing.
pub async fn set_aside(pool: &PgPool, letters: &[NewDeadLetter]) -> Result<(), sqlx::Error> {
    let handled: Vec<Uuid> = letters.iter().map(|l| l.ingest_id).collect();
    write_batch(pool, &[], letters, &handled).await?;
    Ok(())
}
