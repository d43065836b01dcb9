//! The queues of one deployment (or one test), all named from one prefix.
//!
//! - `<prefix>.calls`: the work queue. A quorum queue whose messages over the delivery limit
//!   (poison: a worker died or panicked on them) or rejected are dead-lettered
//!   at-least-once into `<prefix>.dead`, never dropped.
//! - `<prefix>.retry.<ms>ms`: one delay queue per step of the retry schedule. Nobody
//!   consumes them; a message waits out the queue's TTL and is dead-lettered back onto the
//!   work queue. Named by delay, so changing the schedule declares new queues instead of
//!   clashing with the arguments of old ones.
//! - `<prefix>.dead`: what the broker itself set aside; workers copy it into the
//!   `dead_letters` table, where it is listed and replayed. A quorum queue with its own
//!   delivery limit (`broker.dead_delivery_limit`; RabbitMQ 4 would impose 20 and then drop)
//!   whose messages over it are dead-lettered at-least-once into `<prefix>.dead.parked`.
//! - `<prefix>.dead.parked`: what could not be recorded even from the dead queue (Postgres
//!   refuses the dead letter, or was down through every delivery). Nobody consumes it; it
//!   waits for people, who move it back once the cause is fixed (README, "Parked messages").

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::Channel;

use crate::config::BrokerSettings;

/// The parked queue's delivery limit: people inspecting it by taking messages and putting
/// them back must never make the broker drop one (RabbitMQ 4 gives a quorum queue 20, and
/// the parked queue dead-letters nowhere).
const PARKED_DELIVERY_LIMIT: i64 = 1_000_000;

/// AMQP's reply to redeclaring a queue with other arguments.
const PRECONDITION_FAILED: u16 = 406;

#[derive(Debug, Clone)]
pub struct Topology {
    pub work_queue: String,
    pub dead_queue: String,
    pub parked_queue: String,
    pub retry_queues: Vec<RetryQueue>,
    delivery_limit: u32,
    dead_delivery_limit: u32,
}

/// One step of the retry schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryQueue {
    pub name: String,
    pub delay: Duration,
}

impl Topology {
    pub fn new(broker: &BrokerSettings) -> Self {
        let prefix = &broker.queue_prefix;
        Self {
            work_queue: format!("{prefix}.calls"),
            dead_queue: format!("{prefix}.dead"),
            parked_queue: format!("{prefix}.dead.parked"),
            retry_queues: broker
                .retry_delays_ms
                .iter()
                .map(|&ms| RetryQueue {
                    name: format!("{prefix}.retry.{ms}ms"),
                    delay: Duration::from_millis(ms),
                })
                .collect(),
            delivery_limit: broker.delivery_limit,
            dead_delivery_limit: broker.dead_delivery_limit,
        }
    }

    /// Every queue name, for clean-up and for watching depths.
    pub fn queues(&self) -> Vec<&str> {
        let mut all = vec![
            self.work_queue.as_str(),
            self.dead_queue.as_str(),
            self.parked_queue.as_str(),
        ];
        all.extend(self.retry_queues.iter().map(|q| q.name.as_str()));
        all
    }

    /// Idempotent; every process calls it so any may start first. Dead-letter targets are
    /// declared before the queues that dead-letter into them: a missing target drops.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let mut parked = quorum();
        delivery_limit(&mut parked, PARKED_DELIVERY_LIMIT);
        declare(channel, &self.parked_queue, parked).await?;

        let mut dead = quorum();
        dead_letter_to(&mut dead, &self.parked_queue);
        delivery_limit(&mut dead, i64::from(self.dead_delivery_limit));
        declare(channel, &self.dead_queue, dead)
            .await
            .inspect_err(|e| self.explain_dead_queue_clash(e))?;

        let mut args = quorum();
        dead_letter_to(&mut args, &self.dead_queue);
        delivery_limit(&mut args, i64::from(self.delivery_limit));
        declare(channel, &self.work_queue, args).await?;

        for retry in &self.retry_queues {
            declare_delay(channel, retry, &self.work_queue).await?;
        }
        Ok(())
    }
}

impl Topology {
    /// A dead queue declared before it had a delivery limit and a parking queue (or with
    /// another limit) cannot be changed in place: every process would fail to start, so the
    /// log says how to move on.
    fn explain_dead_queue_clash(&self, error: &lapin::Error) {
        let clash = matches!(error.kind(), lapin::ErrorKind::ProtocolError(e) if e.get_id() == PRECONDITION_FAILED);
        if clash {
            tracing::error!(
                queue = %self.dead_queue,
                %error,
                "the dead queue exists with other arguments (declared by an older version, or \
                 with another broker.dead_delivery_limit) and RabbitMQ cannot change them. To \
                 migrate: stop the workers and gateways, move any messages of this queue into a \
                 temporary queue (a shovel), delete it (rabbitmqctl delete_queue), start this \
                 version, which declares it anew, then move the messages back; see README, \
                 \"Parked messages\""
            );
        }
    }
}

fn delivery_limit(args: &mut FieldTable, limit: i64) {
    args.insert(
        ShortString::from("x-delivery-limit"),
        AMQPValue::LongLongInt(limit),
    );
}

pub(super) fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-queue-type"), long("quorum"));
    args
}

/// A delay queue: nobody consumes it; its TTL dead-letters each message onto `target`.
pub(super) async fn declare_delay(
    channel: &Channel,
    delay: &RetryQueue,
    target: &str,
) -> Result<(), lapin::Error> {
    let mut args = quorum();
    dead_letter_to(&mut args, target);
    let ttl = i64::try_from(delay.delay.as_millis()).unwrap_or(i64::MAX);
    args.insert(
        ShortString::from("x-message-ttl"),
        AMQPValue::LongLongInt(ttl),
    );
    declare(channel, &delay.name, args).await
}

/// At-least-once dead-lettering (a quorum queue feature) needs `reject-publish` overflow.
fn dead_letter_to(args: &mut FieldTable, queue: &str) {
    args.insert(ShortString::from("x-dead-letter-exchange"), long(""));
    args.insert(ShortString::from("x-dead-letter-routing-key"), long(queue));
    args.insert(
        ShortString::from("x-dead-letter-strategy"),
        long("at-least-once"),
    );
    args.insert(ShortString::from("x-overflow"), long("reject-publish"));
}

pub(super) async fn declare(
    channel: &Channel,
    name: &str,
    args: FieldTable,
) -> Result<(), lapin::Error> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel.queue_declare(name.into(), durable, args).await?;
    Ok(())
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}
