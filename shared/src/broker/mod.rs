//! RabbitMQ: connecting without hanging, the queues every process declares the same way,
//! publishing with confirms, and the headers a message carries between attempts.

pub mod headers;
pub mod publisher;
pub mod topology;

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use secrecy::ExposeSecret;

use crate::config::BrokerSettings;

pub use publisher::{PublishError, Publisher};
pub use topology::{RetryQueue, Topology};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("timed out connecting to the broker")]
    ConnectTimeout,
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
}

/// `Connection::connect` can hang on a dead broker or a refused vhost: bound it.
pub async fn connect(settings: &BrokerSettings, name: &str) -> Result<Connection, BrokerError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(
        settings.connect_timeout(),
        Connection::connect(settings.url.expose_secret(), properties),
    )
    .await
    .map_err(|_| BrokerError::ConnectTimeout)?
    .map_err(BrokerError::from)
}

/// How long a closing connection waits for the broker's close-ok.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Closes the connection, giving up after [`CLOSE_TIMEOUT`]: lapin's `close` has been seen
/// never to return after the broker had already dropped the connection, which hung a
/// benchmark run. Whatever is still unacknowledged is requeued by the broker either way.
pub async fn close(connection: &Connection, reason: &str) {
    let closing = connection.close(200, reason.into());
    if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
        tracing::warn!(
            reason,
            "the broker did not answer a connection close in time"
        );
    }
}
