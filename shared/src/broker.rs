//! RabbitMQ: connecting without hanging, and the queues every process declares the same way.

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties};
use secrecy::ExposeSecret;

use crate::config::BrokerSettings;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("timed out connecting to the broker")]
    ConnectTimeout,
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
}

/// Queue names of one deployment (or one test): everything hangs off the prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    pub work_queue: String,
    pub dead_queue: String,
    delivery_limit: u32,
}

impl Topology {
    pub fn new(settings: &BrokerSettings) -> Self {
        Self {
            work_queue: format!("{}.calls", settings.queue_prefix),
            dead_queue: format!("{}.dead", settings.queue_prefix),
            delivery_limit: settings.delivery_limit,
        }
    }

    /// Idempotent; both gateway and worker call it so either may start first. The work queue
    /// is a quorum queue whose poison messages (over the delivery limit, or rejected) are
    /// dead-lettered at-least-once into the dead queue rather than dropped.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let mut dead_args = FieldTable::default();
        dead_args.insert(ShortString::from("x-queue-type"), long("quorum"));
        channel
            .queue_declare(self.dead_queue.as_str().into(), durable, dead_args)
            .await?;

        let mut args = FieldTable::default();
        args.insert(ShortString::from("x-queue-type"), long("quorum"));
        args.insert(ShortString::from("x-dead-letter-exchange"), long(""));
        args.insert(
            ShortString::from("x-dead-letter-routing-key"),
            long(&self.dead_queue),
        );
        args.insert(
            ShortString::from("x-dead-letter-strategy"),
            long("at-least-once"),
        );
        args.insert(ShortString::from("x-overflow"), long("reject-publish"));
        args.insert(
            ShortString::from("x-delivery-limit"),
            AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
        );
        channel
            .queue_declare(self.work_queue.as_str().into(), durable, args)
            .await?;
        Ok(())
    }
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
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
