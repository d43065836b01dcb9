//! The probe stage's queues, named from the same prefix as the calls' ones.
//!
//! - `<prefix>.probes`: probe work (`probe_work::ProbeWork`), published by the calls stage
//!   after each commit, by the probe stage's own retries and deferrals, and by reprobes.
//! - `<prefix>.probes.retry.<ms>ms`: one delay queue per step of `media.retry_delays_ms`,
//!   for recordings that may still appear (404, timeout, refused connection); the TTL
//!   dead-letters the work back onto `<prefix>.probes`.
//! - `<prefix>.probes.defer.<ms>ms`: probes put off because their host already has as much
//!   waiting as it can serve, so that a slow host's excess never sits in a consumer's
//!   prefetch in front of other hosts' work.

use std::time::Duration;

use lapin::Channel;

use super::{topology, BrokerError, RetryQueue};
use crate::config::{BrokerSettings, MediaSettings};

#[derive(Debug, Clone)]
pub struct ProbeTopology {
    pub work_queue: String,
    pub retry_queues: Vec<RetryQueue>,
    pub defer_queue: RetryQueue,
}

impl ProbeTopology {
    pub fn new(prefix: &str, media: &MediaSettings) -> Self {
        Self {
            work_queue: format!("{prefix}.probes"),
            retry_queues: media
                .retry_delays_ms
                .iter()
                .map(|&ms| RetryQueue {
                    name: format!("{prefix}.probes.retry.{ms}ms"),
                    delay: Duration::from_millis(ms),
                })
                .collect(),
            defer_queue: RetryQueue {
                name: format!("{prefix}.probes.defer.{}ms", media.defer_ms),
                delay: Duration::from_millis(media.defer_ms),
            },
        }
    }

    pub fn queues(&self) -> Vec<&str> {
        let mut all = vec![self.work_queue.as_str(), self.defer_queue.name.as_str()];
        all.extend(self.retry_queues.iter().map(|q| q.name.as_str()));
        all
    }

    /// Idempotent, like the calls' topology. Quorum queues: probe work survives a broker
    /// node's loss like the calls it belongs to.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        topology::declare(channel, &self.work_queue, topology::quorum()).await?;
        for delay in self.retry_queues.iter().chain([&self.defer_queue]) {
            topology::declare_delay(channel, delay, &self.work_queue).await?;
        }
        Ok(())
    }

    /// [`Self::declare`] over a connection of its own, closed after: for what publishes probe
    /// work without consuming it (reprobes from the CLI and the admin API), whose
    /// `Publisher` declares only the calls' queues. `name` labels the connection in RabbitMQ.
    pub async fn declare_apart(
        &self,
        settings: &BrokerSettings,
        name: &str,
    ) -> Result<(), BrokerError> {
        let connection = super::connect(settings, name).await?;
        let declared = async {
            let channel = connection.create_channel().await?;
            self.declare(&channel).await
        };
        // Bounded like a publisher's setup: a broker that accepts connections and then
        // stops answering would hang the request.
        let declared = tokio::time::timeout(settings.connect_timeout(), declared).await;
        super::close(&connection, "probe queues declared").await;
        declared.map_err(|_| BrokerError::ConnectTimeout)??;
        Ok(())
    }
}
