//! Publishing with publisher confirms over a pool of channels, so that no request waits
//! behind another's confirm, and reconnecting when the broker comes back, or to another node
//! of the cluster when its own is lost. The gateway publishes calls with it, the worker
//! retries, replays publish dead letters again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::Confirmation;
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::{Mutex, RwLock};

use super::{BrokerError, Nodes, PublishMetrics, Topology};
use crate::config::BrokerSettings;
use crate::message;

/// After a failed connect, requests fail fast for this long instead of each retrying.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    #[error("broker unavailable; reconnecting")]
    Reconnecting,
    #[error("broker did not confirm in time")]
    ConfirmTimeout,
    #[error("broker refused the message")]
    Nacked,
    #[error("no queue received the message (is the topology declared?)")]
    Unroutable,
}

#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    name: &'static str,
    settings: BrokerSettings,
    nodes: Nodes,
    topology: Topology,
    live: RwLock<Option<Live>>,
    last_attempt: Mutex<Option<Instant>>,
    next_channel: AtomicUsize,
    metrics: PublishMetrics,
}

struct Live {
    connection: Connection,
    channels: Vec<Channel>,
}

impl Live {
    fn healthy(&self) -> bool {
        self.connection.status().connected() && self.channels.iter().all(|c| c.status().connected())
    }
}

impl Publisher {
    /// Does not connect: the first publish (or readiness check) does, so a gateway starts
    /// and answers 503 while the broker is down. `name` labels the connection in RabbitMQ.
    pub fn new(settings: BrokerSettings, name: &'static str) -> Self {
        Self {
            inner: Arc::new(Inner {
                name,
                topology: Topology::new(&settings),
                nodes: Nodes::new(&settings),
                settings,
                live: RwLock::new(None),
                last_attempt: Mutex::new(None),
                next_channel: AtomicUsize::new(0),
                metrics: PublishMetrics::default(),
            }),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    pub fn metrics(&self) -> &PublishMetrics {
        &self.inner.metrics
    }

    /// Sets the connection and channel gauges; left as they were while a reconnect holds
    /// the connection (a scrape does not wait for it).
    pub fn sample_gauges(&self) {
        if let Ok(live) = self.inner.live.try_read() {
            let (connections, channels) = live.as_ref().map_or((0, 0), |l| {
                let up = l.connection.status().connected();
                let channels = l.channels.iter().filter(|c| c.status().connected()).count();
                (i64::from(up), i64::try_from(channels).unwrap_or(i64::MAX))
            });
            self.inner.metrics.connections_up.set(connections);
            self.inner.metrics.channels_up.set(channels);
        }
    }

    /// Onto the work queue; resolves only once the broker has confirmed the message
    /// durably queued.
    pub async fn publish(&self, payload: &[u8]) -> Result<(), PublishError> {
        let queue = self.inner.topology.work_queue.as_str();
        self.publish_to(queue, payload, properties()).await
    }

    /// A group of `calls` calls (`message::group`) onto the work queue, confirmed as one;
    /// compressed if `broker.compress_groups` says so.
    pub async fn publish_group(&self, body: &[u8], calls: usize) -> Result<(), PublishError> {
        self.publish_group_traced(body, calls, &[]).await
    }

    /// Like `publish_group`, with the trace contexts of its calls in its headers.
    pub async fn publish_group_traced(
        &self,
        body: &[u8],
        calls: usize,
        traceparents: &[String],
    ) -> Result<(), PublishError> {
        let queue = self.inner.topology.work_queue.as_str();
        let mut headers = match calls {
            1 => FieldTable::default(),
            n => super::headers::group_headers(n),
        };
        super::headers::add_traceparents(&mut headers, traceparents);
        let properties = if headers.inner().is_empty() {
            properties()
        } else {
            properties().with_headers(headers)
        };
        match calls {
            1 => self.publish_to(queue, body, properties).await,
            _ => self.publish_compressible(queue, body, properties).await,
        }
    }

    /// Probe work onto `queue` (the probe queue or one of its delay queues), compressed like
    /// a group.
    pub async fn publish_probe_work(&self, queue: &str, body: &[u8]) -> Result<(), PublishError> {
        self.publish_compressible(queue, body, properties()).await
    }

    /// Compressed when `broker.compress_groups` says so.
    async fn publish_compressible(
        &self,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        if self.inner.settings.compress_groups {
            let properties = properties.with_content_encoding(message::LZ4.into());
            self.publish_to(queue, &message::compress(body), properties)
                .await
        } else {
            self.publish_to(queue, body, properties).await
        }
    }

    /// Onto the dead queue, carrying `headers` (why it is set aside), for a call a worker
    /// could not record as a dead letter itself.
    pub async fn publish_dead(
        &self,
        payload: &[u8],
        headers: FieldTable,
    ) -> Result<(), PublishError> {
        let queue = self.inner.topology.dead_queue.as_str();
        self.publish_to(queue, payload, properties().with_headers(headers))
            .await
    }

    /// Onto a delay queue, carrying `headers`; `expiration` (at most the queue's own TTL)
    /// spreads retries of messages that failed together.
    pub async fn publish_delayed(
        &self,
        queue: &str,
        payload: &[u8],
        headers: FieldTable,
        expiration: Duration,
    ) -> Result<(), PublishError> {
        let properties = properties()
            .with_headers(headers)
            .with_expiration(ShortString::from(expiration.as_millis().to_string()));
        self.publish_to(queue, payload, properties).await
    }

    async fn publish_to(
        &self,
        queue: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let channel = self.channel().await?;
        let result = self
            .publish_on(&channel, queue, payload, properties.clone())
            .await;
        let result = match result {
            // The connection went down (its node stopped, most often) with the message
            // unconfirmed: once more on a fresh connection, which `channel` opens to the next
            // node. The answer still waits for a confirm, now the new node's. Had the lost
            // node queued the message after all, it is queued twice, and stored once: workers
            // upsert calls by uid. Only once: a second failure is no passing node change.
            Err(PublishError::Unavailable(lost)) if !channel.status().connected() => {
                tracing::warn!(error = %lost, "connection lost before the confirm; publishing again");
                let channel = self.channel().await?;
                self.publish_on(&channel, queue, payload, properties).await
            }
            other => other,
        };
        if let Err(e) = &result {
            self.inner.metrics.failed(e);
            tracing::warn!(error = %e, "publish failed");
        }
        result
    }

    /// Connects if needed; true when publishing would be attempted now.
    pub async fn ready(&self) -> bool {
        self.channel().await.is_ok()
    }

    async fn publish_on(
        &self,
        channel: &Channel,
        queue: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let started = Instant::now();
        let publish = async {
            let confirm = channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    payload,
                    properties,
                )
                .await?;
            confirm.await
        };
        match tokio::time::timeout(self.inner.settings.confirm_timeout(), publish).await {
            Err(_) => Err(PublishError::ConfirmTimeout),
            Ok(Err(e)) => Err(PublishError::Unavailable(e.to_string())),
            Ok(Ok(Confirmation::Ack(None))) => {
                self.inner.metrics.confirmed(started.elapsed());
                Ok(())
            }
            Ok(Ok(Confirmation::Ack(Some(_returned)))) => Err(PublishError::Unroutable),
            Ok(Ok(Confirmation::Nack(_))) => Err(PublishError::Nacked),
            // Only possible without confirm_select, which every pooled channel has.
            Ok(Ok(Confirmation::NotRequested)) => Err(PublishError::Nacked),
        }
    }

    async fn channel(&self) -> Result<Channel, PublishError> {
        if let Some(channel) = self.pick().await {
            return Ok(channel);
        }
        let mut last_attempt = self.inner.last_attempt.lock().await;
        // Another request may have reconnected while this one waited for the lock.
        if let Some(channel) = self.pick().await {
            return Ok(channel);
        }
        if last_attempt.is_some_and(|t| t.elapsed() < RECONNECT_BACKOFF) {
            return Err(PublishError::Reconnecting);
        }
        *last_attempt = Some(Instant::now());
        // A connection with one broken channel is still open: close it, or it leaks.
        if let Some(old) = self.inner.live.write().await.take() {
            tokio::spawn(async move {
                super::close(&old.connection, "replaced").await;
            });
        }
        let live = self.connect().await.map_err(|e| {
            tracing::warn!(error = %e, "cannot connect to the broker");
            PublishError::Unavailable(e.to_string())
        })?;
        tracing::info!(channels = live.channels.len(), "connected to the broker");
        let channel = live.channels[0].clone();
        *self.inner.live.write().await = Some(live);
        Ok(channel)
    }

    async fn pick(&self) -> Option<Channel> {
        let live = self.inner.live.read().await;
        let live = live.as_ref().filter(|l| l.healthy())?;
        let i = self.inner.next_channel.fetch_add(1, Ordering::Relaxed) % live.channels.len();
        Some(live.channels[i].clone())
    }

    async fn connect(&self) -> Result<Live, BrokerError> {
        let connection = self.inner.nodes.connect(self.inner.name).await?;
        let setup = async {
            let mut channels = Vec::with_capacity(self.inner.settings.publish_channels.max(1));
            for _ in 0..self.inner.settings.publish_channels.max(1) {
                let channel = connection.create_channel().await?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await?;
                channels.push(channel);
            }
            self.inner.topology.declare(&channels[0]).await?;
            Ok::<_, lapin::Error>(channels)
        };
        let channels = tokio::time::timeout(self.inner.settings.connect_timeout(), setup)
            .await
            .map_err(|_| BrokerError::ConnectTimeout)??;
        Ok(Live {
            connection,
            channels,
        })
    }
}

/// Persistent: a confirmed message survives a broker restart. Stamped with when it was
/// published, from which a worker tells how long its queue's head has waited.
fn properties() -> BasicProperties {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_timestamp(now)
}
