//! The raw limits of what the pipeline depends on, measured in-process with lapin and sqlx
//! directly, with our own message bytes and rows: how fast RabbitMQ takes confirmed
//! publishes into a quorum queue declared exactly like the work queue, how fast it hands
//! them out against acks, how fast Postgres takes multi-row upserts into `calls`, and how
//! fast a bare reqwest client gets HEADs answered by the bench's recording host.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use chrono::Utc;
use futures_util::future::join_all;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation};
use serde::Serialize;
use shared::broker::Topology;
use shared::config::BrokerSettings;
use shared::contract::{parse_call, Body};
use shared::domain::FieldType;
use shared::message::{CallEnvelope, CallMessage};
use sqlx::PgPool;
use uuid::Uuid;
use worker::calls::store::Ready;

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
/// One HEAD of the raw loop, answered at once on loopback unless something is wrong.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Parameters of the raw measurements, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Method {
    pub publish: String,
    pub consume: String,
    pub upsert: String,
    pub head: String,
}

/// `head_loops`: the probes a worker may have in flight against one host.
pub fn method(head_loops: usize) -> Method {
    Method {
        publish: format!(
            "{PUBLISH_CHANNELS} channels x {PUBLISH_WINDOW} confirms in flight, mandatory, persistent, quorum queue"
        ),
        consume: format!("prefetch {CONSUME_PREFETCH}, basic.ack multiple every {ACK_EVERY}"),
        upsert: format!(
            "INSERT .. SELECT FROM UNNEST .. ON CONFLICT DO UPDATE, {UPSERT_BATCH} rows a statement, {UPSERT_SESSIONS} sessions"
        ),
        head: format!(
            "{head_loops} loops (media.per_host_concurrency) x HEAD, one keep-alive reqwest client, one host"
        ),
    }
}

/// Envelopes as a gateway would publish them: each body through `parse_call`.
pub fn envelopes(bodies: &[Bytes], fixture: &Fixture) -> anyhow::Result<Vec<CallEnvelope>> {
    let definitions: HashMap<String, FieldType> = HashMap::new();
    let limits = shared::config::Settings::defaults().limits;
    bodies
        .iter()
        .map(|body| {
            let parsed = parse_call(&Body::parse(body)?, &definitions, &limits)
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
    shared::broker::close(&connection, "").await;
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
    shared::broker::close(&connection, "").await;
    Ok(rate)
}

/// Upserts one row per envelope into `calls` with the worker's own statement
/// (`worker::calls::store::upsert_calls`), timed alone: no decoding, probing, clients or notes.
pub async fn upsert(
    pool: &PgPool,
    envelopes: &[CallEnvelope],
    operators: &HashMap<String, Operator>,
) -> anyhow::Result<Rate> {
    let rows = envelopes
        .iter()
        .map(|envelope| ready(envelope, operators))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let batches: Vec<Vec<&Ready>> = rows
        .chunks(UPSERT_BATCH)
        .map(|chunk| chunk.iter().collect())
        .collect();
    let next = AtomicUsize::new(0);
    let no_clients = HashMap::new();
    let started = Instant::now();
    let sessions = (0..UPSERT_SESSIONS).map(|_| async {
        let mut conn = pool.acquire().await.context("raw upsert: connect")?;
        while let Some(batch) = batches.get(next.fetch_add(1, Ordering::Relaxed)) {
            worker::calls::store::upsert_calls(&mut conn, batch, &no_clients)
                .await
                .context("raw upsert")?;
        }
        anyhow::Ok(())
    });
    for session in join_all(sessions).await {
        session?;
    }
    Ok(Rate::new(envelopes.len(), started.elapsed()))
}

/// A row as the worker's calls stage writes it (media pending until probed).
/// `client_id` stays empty: the clients table is not what this measures.
fn ready<'a>(
    envelope: &'a CallEnvelope,
    operators: &HashMap<String, Operator>,
) -> anyhow::Result<Ready<'a>> {
    let call = &envelope.call;
    let operator = operators
        .get(call.operator_id.as_str())
        .with_context(|| format!("operator {} is not bound", call.operator_id.as_str()))?;
    Ok(Ready {
        envelope,
        key: call.storage_key(),
        operator: worker::operators::Operator {
            user_id: operator.user_id,
            department_id: operator.department_id,
        },
    })
}

/// The message bytes a gateway publishes for each envelope.
pub fn payloads(envelopes: &[CallEnvelope]) -> Vec<Vec<u8>> {
    envelopes
        .iter()
        .map(|e| CallMessage::V1(e.clone()).to_bytes())
        .collect()
}

/// `n` HEADs of distinct recordings on `media_base`, from `loops` tasks sharing one keep-alive
/// client: the most a worker's probes of one host could reach, with none of its work around
/// them (queues, slots, circuits, results).
pub async fn head(media_base: &str, n: usize, loops: usize) -> anyhow::Result<Rate> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(HEAD_TIMEOUT)
        .build()
        .context("build the raw HEAD client")?;
    let urls: Arc<Vec<String>> = Arc::new(
        (0..n)
            .map(|i| format!("{media_base}/recordings/raw-{i}.wav"))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..loops.max(1))
        .map(|_| {
            let (client, urls, next) = (client.clone(), urls.clone(), next.clone());
            tokio::spawn(async move {
                while let Some(url) = urls.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let answer = client.head(url).send().await?;
                    if !answer.status().is_success() {
                        bail!("the media server answered {} to a HEAD", answer.status());
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await.context("a HEAD loop panicked")??;
    }
    Ok(Rate::new(n, started.elapsed()))
}
