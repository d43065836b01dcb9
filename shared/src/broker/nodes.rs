//! Which node of a RabbitMQ cluster a connection goes to, and where it goes when its node
//! dies.
//!
//! Each connection owner (a publisher, a worker stage) keeps a [`Nodes`] of its own and
//! starts at a random node: many gateways and workers then spread over the cluster instead
//! of all landing on the first address, so one node's loss moves a share of the connections
//! rather than all of them, and they do not all crowd onto the same next node (RabbitMQ's
//! Java and .NET clients shuffle their address lists for the same reason). No node is better
//! placed than another: quorum queue leaders are spread over the nodes, and a node forwards
//! to the leader. After that the owner goes round in order, starting after the node it was
//! last connected to, since a lost connection most often means a lost node: trying that node
//! first again would cost a refused connection at best, a whole `connect_timeout_ms` at
//! worst.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};

use super::BrokerError;
use crate::config::BrokerSettings;

pub struct Nodes {
    addresses: Vec<SecretString>,
    connect_timeout: Duration,
    /// Index of the node the next connect tries first.
    next: AtomicUsize,
}

impl Nodes {
    pub fn new(settings: &BrokerSettings) -> Self {
        let addresses = settings.addresses();
        Self {
            next: AtomicUsize::new(rand::random_range(0..addresses.len())),
            addresses,
            connect_timeout: settings.connect_timeout(),
        }
    }

    /// A connection to the first node that takes it, each attempt bounded by
    /// `connect_timeout_ms` (`Connection::connect` can hang on a dead node or a refused
    /// vhost). Fails with the last node's error when none does. `name` labels the connection
    /// in RabbitMQ.
    pub async fn connect(&self, name: &str) -> Result<Connection, BrokerError> {
        let count = self.addresses.len();
        let first = self.next.load(Ordering::Relaxed);
        let mut last_error = BrokerError::ConnectTimeout;
        for i in (first..first + count).map(|i| i % count) {
            let address = &self.addresses[i];
            match self.connect_to(address, name).await {
                Ok(connection) => {
                    self.next.store((i + 1) % count, Ordering::Relaxed);
                    if count > 1 {
                        tracing::info!(node = %node_label(address), connection = name, "connected to a broker node");
                    }
                    return Ok(connection);
                }
                Err(error) => {
                    if count > 1 {
                        tracing::warn!(node = %node_label(address), connection = name, %error, "cannot connect to a broker node; trying the next");
                    }
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }

    async fn connect_to(
        &self,
        address: &SecretString,
        name: &str,
    ) -> Result<Connection, BrokerError> {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        tokio::time::timeout(
            self.connect_timeout,
            Connection::connect(address.expose_secret(), properties),
        )
        .await
        .map_err(|_| BrokerError::ConnectTimeout)?
        .map_err(BrokerError::from)
    }
}

/// `host:port` of an address, for logs: the address itself holds the password.
fn node_label(address: &SecretString) -> String {
    url::Url::parse(address.expose_secret())
        .ok()
        .and_then(|url| {
            let host = url.host_str()?.to_owned();
            Some(match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .unwrap_or_else(|| "(unparsable address)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_label_never_shows_the_password() {
        let address = SecretString::from("amqp://callq:s3cret@rabbit-2.internal:5672/%2f");
        assert_eq!(node_label(&address), "rabbit-2.internal:5672");
    }
}
