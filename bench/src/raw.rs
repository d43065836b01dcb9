//! The raw limits of what the pipeline depends on, measured in-process with lapin and sqlx
//! directly, with our own message bytes and rows: how fast RabbitMQ takes confirmed
//! publishes into a quorum queue declared exactly like the work queue, how fast it hands
//! them out against acks, and how fast Postgres takes multi-row upserts into `calls`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation};
use serde::Serialize;
use serde_json::{json, Value};
use shared::broker::Topology;
use shared::config::BrokerSettings;
use shared::contract::parse_call;
use shared::domain::FieldType;
use shared::message::{CallEnvelope, CallMessage};
use sqlx::PgPool;
use uuid::Uuid;

use crate::fixture::{Fixture, Operator};
use crate::report::Rate;

/// Channels publishing at once, and confirms each keeps in flight.
pub const PUBLISH_CHANNELS: usize = 4;
pub const PUBLISH_WINDOW: usize = 512;
pub const CONSUME_PREFETCH: u16 = 1000;
/// One `basic.ack` with `multiple` settles this many deliveries.
pub const ACK_EVERY: usize = 100;
pub const UPSERT_BATCH: usize = 500;
/// Sessions upserting at once: one per core of the target machine.
pub const UPSERT_SESSIONS: usize = 2;
/// A broker that hands out nothing for this long has lost messages or hung.
const STALL: Duration = Duration::from_secs(30);

/// Parameters of the raw measurements, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Method {
    pub publish: String,
    pub consume: String,
    pub upsert: String,
}

pub fn method() -> Method {
    Method {
        publish: format!(
            "{PUBLISH_CHANNELS} channels x {PUBLISH_WINDOW} confirms in flight, mandatory, persistent, quorum queue"
        ),
        consume: format!("prefetch {CONSUME_PREFETCH}, basic.ack multiple every {ACK_EVERY}"),
        upsert: format!(
            "INSERT .. SELECT FROM UNNEST .. ON CONFLICT DO UPDATE, {UPSERT_BATCH} rows a statement, {UPSERT_SESSIONS} sessions"
        ),
    }
}

/// Envelopes as a gateway would publish them: each body through `parse_call`.
pub fn envelopes(bodies: &[Bytes], fixture: &Fixture) -> anyhow::Result<Vec<CallEnvelope>> {
    let definitions: HashMap<String, FieldType> = HashMap::new();
    bodies
        .iter()
        .map(|body| {
            let value: Value = serde_json::from_slice(body)?;
            let parsed = parse_call(&value, &definitions)
                .map_err(|e| anyhow::anyhow!("a generated body is invalid: {e}"))?;
            Ok(CallEnvelope {
                ingest_id: Uuid::now_v7(),
                integration_id: fixture.integration_id,
                organisation_id: fixture.organisation_id,
                received_at: Utc::now(),
                call: parsed.call,
            })
        })
        .collect()
}

/// Publishes every payload to the raw work queue and waits for every confirm.
pub async fn publish(broker: &BrokerSettings, payloads: Vec<Vec<u8>>) -> anyhow::Result<Rate> {
    let topology = Topology::new(broker);
    let connection = shared::broker::connect(broker, "bench-raw-publish").await?;
    let mut channels = Vec::with_capacity(PUBLISH_CHANNELS);
    for _ in 0..PUBLISH_CHANNELS {
        let channel = connection.create_channel().await?;
        channel.confirm_select(Default::default()).await?;
        channels.push(channel);
    }
    topology
        .declare(&channels[0])
        .await
        .context("declare the raw queues")?;

    let payloads = Arc::new(payloads);
    let next = Arc::new(AtomicUsize::new(0));
    let queue = Arc::new(topology.work_queue.clone());
    let started = Instant::now();
    let tasks: Vec<_> = channels
        .into_iter()
        .map(|channel| {
            let (payloads, next, queue) = (payloads.clone(), next.clone(), queue.clone());
            tokio::spawn(async move {
                let mut window = VecDeque::with_capacity(PUBLISH_WINDOW);
                while let Some(payload) = payloads.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if window.len() == PUBLISH_WINDOW {
                        confirmed(window.pop_front().expect("a full window")).await?;
                    }
                    let confirm = channel
                        .basic_publish(
                            "".into(),
                            queue.as_str().into(),
                            BasicPublishOptions {
                                mandatory: true,
                                ..Default::default()
                            },
                            payload,
                            BasicProperties::default()
                                .with_delivery_mode(2)
                                .with_content_type("application/json".into()),
                        )
                        .await?;
                    window.push_back(confirm);
                }
                for confirm in window {
                    confirmed(confirm).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await.context("a publish task panicked")??;
    }
    let rate = Rate::new(payloads.len(), started.elapsed());
    let _ = connection.close(200, "".into()).await;
    Ok(rate)
}

async fn confirmed(confirm: lapin::PublisherConfirm) -> anyhow::Result<()> {
    match confirm.await? {
        Confirmation::Ack(None) => Ok(()),
        other => bail!("the broker did not take a message: {other:?}"),
    }
}

/// Consumes `n` messages from the raw work queue, acking as described by [`method`].
pub async fn consume(broker: &BrokerSettings, n: usize) -> anyhow::Result<Rate> {
    let queue = Topology::new(broker).work_queue;
    let connection = shared::broker::connect(broker, "bench-raw-consume").await?;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(CONSUME_PREFETCH, BasicQosOptions::default())
        .await?;
    let started = Instant::now();
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            "bench-raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut received = 0;
    while received < n {
        let delivery = tokio::time::timeout(STALL, deliveries.next())
            .await
            .with_context(|| format!("no delivery for {STALL:?} after {received} of {n}"))?
            .context("the broker cancelled the consumer")??;
        received += 1;
        if received % ACK_EVERY == 0 || received == n {
            delivery
                .acker
                .ack(BasicAckOptions { multiple: true })
                .await?;
        }
    }
    let rate = Rate::new(received, started.elapsed());
    let _ = connection.close(200, "".into()).await;
    Ok(rate)
}

/// Upserts one row per envelope into `calls`, with the worker's columns and conflict rule.
pub async fn upsert(
    pool: &PgPool,
    envelopes: &[CallEnvelope],
    operators: &HashMap<String, Operator>,
) -> anyhow::Result<Rate> {
    let batches = envelopes
        .chunks(UPSERT_BATCH)
        .map(|chunk| Batch::of(chunk, operators))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let sessions: Vec<_> = (0..UPSERT_SESSIONS)
        .map(|_| {
            let (pool, batches, next) = (pool.clone(), batches.clone(), next.clone());
            tokio::spawn(async move {
                while let Some(batch) = batches.get(next.fetch_add(1, Ordering::Relaxed)) {
                    batch.upsert(&pool).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for session in sessions {
        session.await.context("an upsert session panicked")??;
    }
    Ok(Rate::new(envelopes.len(), started.elapsed()))
}

/// One statement's rows, column by column, as `UNNEST` takes them.
#[derive(Default)]
struct Batch {
    id: Vec<Uuid>,
    integration_id: Vec<Uuid>,
    uid: Vec<String>,
    uid_derived: Vec<bool>,
    organisation_id: Vec<Uuid>,
    operator_id: Vec<String>,
    user_id: Vec<Uuid>,
    department_id: Vec<Option<Uuid>>,
    client_id: Vec<Option<Uuid>>,
    client: Vec<Option<Value>>,
    started_at: Vec<DateTime<Utc>>,
    direction: Vec<Option<String>>,
    duration: Vec<Option<f64>>,
    client_phone_number: Vec<Option<String>>,
    phone_call_chain_uid: Vec<Option<String>>,
    nps: Vec<Option<f64>>,
    media_url: Vec<String>,
    custom_fields: Vec<Value>,
    transcription: Vec<Option<Value>>,
    media_reachable: Vec<Option<bool>>,
    media_http_status: Vec<Option<i32>>,
    media_content_type: Vec<Option<String>>,
    media_content_length: Vec<Option<i64>>,
    media_insecure: Vec<bool>,
    media_error: Vec<Option<String>>,
    media_checked_at: Vec<Option<DateTime<Utc>>>,
    ingest_id: Vec<Uuid>,
    received_at: Vec<DateTime<Utc>>,
}

impl Batch {
    /// Rows as the worker would write them after a successful probe of the media server.
    /// `client_id` stays empty: the clients table is not what this measures.
    fn of(
        envelopes: &[CallEnvelope],
        operators: &HashMap<String, Operator>,
    ) -> anyhow::Result<Self> {
        let mut b = Batch::default();
        for envelope in envelopes {
            let call = &envelope.call;
            let key = call.storage_key();
            let operator = operators
                .get(call.operator_id.as_str())
                .with_context(|| format!("operator {} is not bound", call.operator_id.as_str()))?;
            b.id.push(Uuid::now_v7());
            b.integration_id.push(envelope.integration_id);
            b.uid.push(key.uid);
            b.uid_derived.push(key.derived);
            b.organisation_id.push(envelope.organisation_id);
            b.operator_id.push(call.operator_id.as_str().to_owned());
            b.user_id.push(operator.user_id);
            b.department_id.push(operator.department_id);
            b.client_id.push(None);
            b.client.push(call.client.as_ref().map(|c| {
                json!({
                    "id": c.id.as_ref().map(|id| id.as_str()),
                    "company_name": c.company_name,
                    "first_name": c.first_name,
                    "last_name": c.last_name,
                })
            }));
            b.started_at.push(call.started_at);
            b.direction
                .push(call.direction.map(|d| d.as_str().to_owned()));
            b.duration.push(call.duration.map(|d| d.get()));
            b.client_phone_number.push(call.client_phone_number.clone());
            b.phone_call_chain_uid.push(
                call.phone_call_chain_uid
                    .as_ref()
                    .map(|u| u.as_str().to_owned()),
            );
            b.nps.push(call.nps);
            b.media_url.push(call.media_url.as_str().to_owned());
            b.custom_fields.push(call.custom_fields.to_json());
            b.transcription.push(
                call.transcription
                    .as_ref()
                    .map(serde_json::to_value)
                    .transpose()?,
            );
            b.media_reachable.push(Some(true));
            b.media_http_status.push(Some(200));
            b.media_content_type.push(Some("audio/wav".into()));
            b.media_content_length.push(Some(1234));
            b.media_insecure
                .push(call.media_url.url().scheme() == "http");
            b.media_error.push(None);
            b.media_checked_at.push(Some(Utc::now()));
            b.ingest_id.push(envelope.ingest_id);
            b.received_at.push(envelope.received_at);
        }
        Ok(b)
    }

    async fn upsert(&self, pool: &PgPool) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO calls (
                id, integration_id, uid, uid_derived, organisation_id, operator_id, user_id, department_id,
                client_id, client, started_at, direction, duration, client_phone_number, phone_call_chain_uid,
                nps, media_url, custom_fields, transcription, media_reachable, media_http_status,
                media_content_type, media_content_length, media_insecure, media_error, media_checked_at,
                ingest_id, received_at)
             SELECT * FROM UNNEST(
                $1::uuid[], $2::uuid[], $3::text[], $4::bool[], $5::uuid[], $6::text[], $7::uuid[], $8::uuid[],
                $9::uuid[], $10::jsonb[], $11::timestamptz[], $12::text[], $13::float8[], $14::text[], $15::text[],
                $16::float8[], $17::text[], $18::jsonb[], $19::jsonb[], $20::bool[], $21::int4[],
                $22::text[], $23::int8[], $24::bool[], $25::text[], $26::timestamptz[],
                $27::uuid[], $28::timestamptz[])
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
        .bind(&self.id)
        .bind(&self.integration_id)
        .bind(&self.uid)
        .bind(&self.uid_derived)
        .bind(&self.organisation_id)
        .bind(&self.operator_id)
        .bind(&self.user_id)
        .bind(&self.department_id)
        .bind(&self.client_id)
        .bind(&self.client)
        .bind(&self.started_at)
        .bind(&self.direction)
        .bind(&self.duration)
        .bind(&self.client_phone_number)
        .bind(&self.phone_call_chain_uid)
        .bind(&self.nps)
        .bind(&self.media_url)
        .bind(&self.custom_fields)
        .bind(&self.transcription)
        .bind(&self.media_reachable)
        .bind(&self.media_http_status)
        .bind(&self.media_content_type)
        .bind(&self.media_content_length)
        .bind(&self.media_insecure)
        .bind(&self.media_error)
        .bind(&self.media_checked_at)
        .bind(&self.ingest_id)
        .bind(&self.received_at)
        .execute(pool)
        .await
        .context("raw upsert")?;
        Ok(())
    }
}

/// The message bytes a gateway publishes for each envelope.
pub fn payloads(envelopes: &[CallEnvelope]) -> Vec<Vec<u8>> {
    envelopes
        .iter()
        .map(|e| CallMessage::V1(e.clone()).to_bytes())
        .collect()
}
