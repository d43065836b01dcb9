//! RabbitMQ: connecting without hanging, the queues every process declares the same way,
//! publishing with confirms, and the headers a message carries between attempts.

pub mod headers;
pub mod publisher;
pub mod topology;

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
