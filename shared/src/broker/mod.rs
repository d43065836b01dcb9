//! RabbitMQ: connecting without hanging (to any node of a cluster), the queues every process
//! declares the same way, publishing with confirms, and the headers a message carries between
//! attempts.

pub mod headers;
pub mod nodes;
pub mod probe_topology;
pub mod publish_metrics;
pub mod publisher;
pub mod topology;

use std::future::Future;
use std::time::Duration;

use lapin::Connection;

use crate::config::BrokerSettings;

pub use nodes::Nodes;
pub use probe_topology::ProbeTopology;
pub use publish_metrics::PublishMetrics;
pub use publisher::{PublishError, Publisher};
pub use topology::{RetryQueue, Topology};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("timed out connecting to the broker")]
    ConnectTimeout,
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
}

/// A one-off connection to any node that takes it (see [`Nodes`]); what reconnects keeps a
/// [`Nodes`] of its own, so that it moves on from a lost node.
pub async fn connect(settings: &BrokerSettings, name: &str) -> Result<Connection, BrokerError> {
    Nodes::new(settings).connect(name).await
}

/// How long a stopping process waits for each answer of the broker (a cancel-ok, the
/// close-ok): lapin waits for ever, and a broker that hangs, or a network that loses
/// packets, would keep a worker from stopping. A benchmark run once hung on a close too.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// `step` bounded by [`STOP_TIMEOUT`], its outcome only logged: a stopping process goes on
/// either way. What is still unacknowledged goes back to the queue when the connection dies.
pub async fn while_stopping<T, E: std::fmt::Display>(
    what: &'static str,
    step: impl Future<Output = Result<T, E>>,
) {
    match tokio::time::timeout(STOP_TIMEOUT, step).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::debug!(what, %error, "failed while stopping"),
        Err(_) => tracing::warn!(what, "the broker did not answer in time; stopping anyway"),
    }
}

/// Closes `connection` unless it is already lost: a lost one would never answer, and each
/// wait for it delays the reconnection to another node.
pub async fn close(connection: &Connection, reason: &str) {
    if connection.status().connected() {
        while_stopping("connection close", connection.close(200, reason.into())).await;
    }
}
