//! The consuming loop: manual acks, bounded prefetch, a session rebuilt whenever the broker
//! connection is lost, and a shutdown that finishes (and settles) in-flight batches first.
//!
//! The work queue is consumed by a few lanes, each a channel of its own that takes a batch
//! (up to `worker.batch_size` deliveries, or what arrived within `worker.batch_wait_ms`),
//! has it written in one transaction and then settles it: messages that failed one by one
//! first, then every other one with a single multiple-ack. A lane handles one batch at a time,
//! so a multiple-ack never covers a delivery of a batch still being written.
//!
//! The session also consumes the dead queue, where the broker itself set messages aside
//! (poison over the delivery limit, or rejected), and copies it into the `dead_letters`
//! table so that people see and replay them like the rest.

use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    BasicRejectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer as Stream};
use shared::broker::headers::{self, Attempts, Death};
use shared::broker::{self, PublishError, Publisher, Topology};
use shared::config::BrokerSettings;
use shared::message;
use shared::metrics::label;
use shared::store::dead_letters::Reason;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::handler::{panic_message, Handler, Outcome};
use crate::metrics::Metrics;
use crate::retry::{Next, Retrier};

const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Dead-queue messages are rare and each is one insert: a few at a time is plenty.
const DEAD_QUEUE_PREFETCH: u16 = 4;
/// After failing to record a dead-queue message (the database is down), wait before
/// handing it back, so that the dead queue is not spun through.
const DEAD_QUEUE_PAUSE: Duration = Duration::from_secs(1);
const DEPTH_SAMPLE_EVERY: Duration = Duration::from_secs(5);

pub struct Consumer {
    pub broker: BrokerSettings,
    pub batching: Batching,
    pub settler: Arc<Settler>,
}

#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub lanes: usize,
    /// Unacknowledged deliveries per lane; more than a batch, so the next one is on its way
    /// while one is written.
    pub prefetch: u16,
    pub size: usize,
    pub wait: Duration,
}

/// What a finished message needs: the handler's verdict turned into broker actions.
pub struct Settler {
    pub handler: Handler,
    pub retrier: Retrier,
    /// Sends the unfinished calls of a group back alone.
    pub publisher: Publisher,
    pub metrics: Metrics,
    /// `broker.delivery_limit`, for describing poison when the broker does not say.
    pub delivery_limit: u32,
}

enum SessionEnd {
    Stopped,
    Lost(String),
}

impl Consumer {
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let topology = Topology::new(&self.broker);
        loop {
            match self.session(&topology, &mut shutdown).await {
                SessionEnd::Stopped => return,
                SessionEnd::Lost(why) => {
                    tracing::warn!(%why, "broker session lost; reconnecting");
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(RECONNECT_DELAY) => {}
                    }
                }
            }
        }
    }

    async fn session(
        &self,
        topology: &Topology,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> SessionEnd {
        let connection = match broker::connect(&self.broker, "worker").await {
            Ok(c) => c,
            Err(e) => return SessionEnd::Lost(e.to_string()),
        };
        let batching = self.batching;
        let setup = async {
            let channel = connection.create_channel().await?;
            topology.declare(&channel).await?;
            let mut lanes = Vec::with_capacity(batching.lanes.max(1));
            for _ in 0..batching.lanes.max(1) {
                lanes.push(consume(&connection, &topology.work_queue, batching.prefetch).await?);
            }
            let dead = consume(&connection, &topology.dead_queue, DEAD_QUEUE_PREFETCH).await?;
            Ok::<_, lapin::Error>((channel, lanes, dead))
        };
        let (side_channel, lanes, (dead_channel, mut dead)) = match setup.await {
            Ok(v) => v,
            Err(e) => return SessionEnd::Lost(e.to_string()),
        };
        tracing::info!(
            queue = %topology.work_queue,
            lanes = lanes.len(),
            batch = batching.size,
            prefetch = batching.prefetch,
            "consuming"
        );

        let (stop, stopped) = watch::channel(false);
        let mut running = JoinSet::new();
        for (channel, stream) in lanes {
            let lane = Lane {
                settler: self.settler.clone(),
                batching,
                channel,
                stream,
                stopped: stopped.clone(),
            };
            running.spawn(lane.run());
        }
        let mut depths = tokio::time::interval(DEPTH_SAMPLE_EVERY);
        let mut in_flight = JoinSet::new();
        let end = loop {
            tokio::select! {
                _ = &mut *shutdown => break SessionEnd::Stopped,
                Some(lane) = running.join_next() => {
                    break SessionEnd::Lost(lane.unwrap_or_else(|e| format!("a lane failed: {e}")));
                }
                next = dead.next() => match next {
                    Some(Ok(delivery)) => {
                        in_flight.spawn(self.settler.clone().dead(delivery));
                    }
                    Some(Err(e)) => break SessionEnd::Lost(e.to_string()),
                    None => break SessionEnd::Lost("the broker cancelled the consumer".into()),
                },
                _ = depths.tick() => self.settler.sample_depths(&side_channel, topology).await,
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        };
        // Batches being written are finished (and settled if the channel still lives);
        // whatever is not acked goes back to the queue when the connection closes.
        let _ = stop.send(true);
        let cancel = dead_channel.basic_cancel(dead.tag(), BasicCancelOptions::default());
        broker::while_stopping("dead-queue consumer cancel", cancel).await;
        while running.join_next().await.is_some() {}
        while in_flight.join_next().await.is_some() {}
        broker::close(&connection, "worker stopping").await;
        end
    }
}

/// One channel's consumer of the work queue, taking and settling one batch at a time.
struct Lane {
    settler: Arc<Settler>,
    batching: Batching,
    channel: Channel,
    stream: Stream,
    stopped: watch::Receiver<bool>,
}

impl Lane {
    /// Returns why it ended (it only ends on its own when the broker is lost).
    async fn run(mut self) -> String {
        loop {
            let stopped = &mut self.stopped;
            let first = tokio::select! {
                _ = async { let _ = stopped.wait_for(|s| *s).await; } => None,
                next = self.stream.next() => Some(next),
            };
            let Some(first) = first else {
                let cancel = self
                    .channel
                    .basic_cancel(self.stream.tag(), BasicCancelOptions::default());
                broker::while_stopping("work-queue consumer cancel", cancel).await;
                return "stopped".into();
            };
            let mut batch = match first {
                Some(Ok(delivery)) => vec![delivery],
                Some(Err(e)) => return e.to_string(),
                None => return "the broker cancelled the consumer".into(),
            };
            let mut calls = headers::calls(&batch[0].properties);
            let deadline = tokio::time::Instant::now() + self.batching.wait;
            while calls < self.batching.size {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    next = self.stream.next() => match next {
                        Some(Ok(delivery)) => {
                            calls += headers::calls(&delivery.properties);
                            batch.push(delivery);
                        }
                        // Settle what was taken; the loop above then sees the end.
                        _ => break,
                    },
                }
            }
            self.settler.batch(batch).await;
        }
    }
}

async fn consume(
    connection: &Connection,
    queue: &str,
    prefetch: u16,
) -> Result<(Channel, Stream), lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let stream = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((channel, stream))
}

impl Settler {
    async fn batch(&self, batch: Vec<Delivery>) {
        let bodies: Vec<Cow<[u8]>> = batch.iter().map(body).collect();
        let calls: Vec<Vec<&[u8]>> = bodies.iter().map(|b| message::split(b)).collect();
        let payloads: Vec<&[u8]> = calls.iter().flatten().copied().collect();
        let mut outcomes = self.outcomes(&payloads).await.into_iter();
        let mut last_done = None;
        for (delivery, calls) in batch.iter().zip(&calls) {
            let outcomes: Vec<Outcome> = outcomes.by_ref().take(calls.len()).collect();
            let settled = match &outcomes[..] {
                [Outcome::Transient { class, error }] => {
                    self.retry(delivery, calls[0], class, error).await
                }
                [Outcome::Panicked(panic)] => {
                    self.count_panic(panic);
                    // Reject, not nack: on every RabbitMQ version it counts toward the limit.
                    delivery
                        .acker
                        .reject(BasicRejectOptions { requeue: true })
                        .await
                }
                all_done if all_done.iter().all(|o| *o == Outcome::Done) => {
                    last_done = Some(delivery);
                    continue;
                }
                _ => self.unfinished_group(delivery, calls, &outcomes).await,
            };
            if let Err(e) = settled {
                tracing::warn!(error = %e, "could not settle a delivery; the broker will redeliver it");
            }
        }
        // Everything else up to the last successful delivery was settled one by one above.
        if let Some(delivery) = last_done {
            if let Err(e) = delivery.acker.ack(BasicAckOptions { multiple: true }).await {
                tracing::warn!(error = %e, "could not ack a batch; the broker will redeliver it");
            }
        }
    }

    fn count_panic(&self, panic: &str) {
        self.metrics.panics.inc();
        tracing::error!(
            %panic,
            "handling a message panicked; it goes back to the queue and is set aside as poison \
             once it reaches the delivery limit"
        );
    }

    /// Some calls of a group failed (transiently, or by panicking): each goes on alone, and
    /// the group is acked once all are confirmed. A call that failed for a while goes to its
    /// first delay queue, as it would have alone (back on the work queue it would meet the
    /// same outage at once); one that panicked goes back to the work queue, to reach the
    /// delivery limit alone. Calls of the group that were stored stay stored.
    async fn unfinished_group(
        &self,
        delivery: &Delivery,
        calls: &[&[u8]],
        outcomes: &[Outcome],
    ) -> Result<bool, lapin::Error> {
        let unfinished: Vec<(&[u8], &Outcome)> = calls
            .iter()
            .zip(outcomes)
            .filter(|(_, outcome)| **outcome != Outcome::Done)
            .map(|(call, outcome)| (*call, outcome))
            .collect();
        for outcome in outcomes {
            if let Outcome::Panicked(panic) = outcome {
                self.count_panic(panic);
            }
        }
        tracing::info!(
            calls = calls.len(),
            unfinished = unfinished.len(),
            "some calls of a group did not finish; they go on alone"
        );
        let attempts = Attempts::read(&delivery.properties);
        let sent = join_all(
            unfinished
                .iter()
                .map(|(call, outcome)| self.send_on_alone(call, outcome, &attempts)),
        )
        .await;
        match sent.into_iter().find_map(Result::err) {
            None => delivery.acker.ack(BasicAckOptions::default()).await,
            Some(e) => {
                tracing::warn!(error = %e, "cannot send a group's calls on alone; requeueing the group");
                requeue(delivery).await
            }
        }
    }

    async fn send_on_alone(
        &self,
        call: &[u8],
        outcome: &Outcome,
        attempts: &Attempts,
    ) -> Result<(), PublishError> {
        if let Outcome::Transient { class, error } = outcome {
            if let Next::Delayed(_) = self
                .retrier
                .schedule(call, &attempts.and_failure(error))
                .await?
            {
                self.metrics
                    .retried
                    .get_or_create(&label("class", *class))
                    .inc();
                return Ok(());
            }
            // Retries are turned off: alone, it is handled as any single call then is.
        }
        self.publisher.publish(call).await
    }

    /// A panic outside the per-message steps would condemn the whole batch; handled again
    /// one by one, only the message that causes it panics.
    async fn outcomes(&self, payloads: &[&[u8]]) -> Vec<Outcome> {
        let handled = AssertUnwindSafe(self.handler.handle_batch(payloads))
            .catch_unwind()
            .await;
        match handled {
            Ok(outcomes) => outcomes,
            Err(panic) if payloads.len() == 1 => vec![Outcome::Panicked(panic_message(&*panic))],
            Err(_) => {
                let mut outcomes = Vec::with_capacity(payloads.len());
                for one in payloads.chunks(1) {
                    let handled = AssertUnwindSafe(self.handler.handle_batch(one))
                        .catch_unwind()
                        .await;
                    outcomes.push(match handled {
                        Ok(mut o) => o.remove(0),
                        Err(panic) => Outcome::Panicked(panic_message(&*panic)),
                    });
                }
                outcomes
            }
        }
    }

    /// The copy on the delay queue is confirmed before the original is acked: a crash in
    /// between leaves two copies, and the upsert by `uid` absorbs the second. `payload` is
    /// the delivery's one call, already decompressed.
    async fn retry(
        &self,
        delivery: &Delivery,
        payload: &[u8],
        class: &'static str,
        error: &str,
    ) -> Result<bool, lapin::Error> {
        let attempts = Attempts::read(&delivery.properties).and_failure(error);
        match self.retrier.schedule(payload, &attempts).await {
            Ok(Next::Delayed(wait)) => {
                self.metrics
                    .retried
                    .get_or_create(&label("class", class))
                    .inc();
                tracing::info!(
                    attempt = attempts.failed + 1,
                    ?wait,
                    "call scheduled for another attempt"
                );
                delivery.acker.ack(BasicAckOptions::default()).await
            }
            Ok(Next::Exhausted) => {
                let detail = format!(
                    "failed {} times with transient errors; last: {error}",
                    attempts.failed
                );
                let failed = i32::try_from(attempts.failed).unwrap_or(i32::MAX);
                let recorded = self
                    .handler
                    .set_aside(
                        payload,
                        Reason::RetriesExhausted,
                        detail,
                        failed,
                        attempts.first_failed_at,
                    )
                    .await;
                match recorded {
                    Ok(()) => delivery.acker.ack(BasicAckOptions::default()).await,
                    Err(e) => {
                        // Still down: the broker keeps it in the dead queue, and it is
                        // recorded from there once the database is back.
                        tracing::warn!(error = %e, "cannot record exhausted retries; handing the call to the dead queue");
                        delivery
                            .acker
                            .reject(BasicRejectOptions { requeue: false })
                            .await
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot publish the retry; requeueing the call");
                requeue(delivery).await
            }
        }
    }

    async fn dead(self: Arc<Self>, delivery: Delivery) {
        let death = Death::read(&delivery.properties);
        let attempts = Attempts::read(&delivery.properties);
        let (reason, detail, count) = match death.as_ref() {
            Some(d) if d.reason == "delivery_limit" => {
                let count = d.delivery_count.unwrap_or(i64::from(self.delivery_limit));
                (
                    Reason::Poison,
                    format!(
                        "delivered {} times without being settled: a worker crashed or panicked \
                         on it each time (broker.delivery_limit)",
                        count
                    ),
                    count,
                )
            }
            // Rejected after its last retry, which the headers (written before it) miss.
            _ => (
                Reason::RetriesExhausted,
                format!(
                    "failed {} times with transient errors; last recorded: {}",
                    attempts.failed + 1,
                    attempts.last_error.as_deref().unwrap_or("unknown")
                ),
                i64::from(attempts.failed + 1),
            ),
        };
        let attempts_count = i32::try_from(count.max(1)).unwrap_or(i32::MAX);
        let recorded = self
            .handler
            .set_aside(
                &body(&delivery),
                reason,
                detail,
                attempts_count,
                attempts.first_failed_at,
            )
            .await;
        let settled = match recorded {
            Ok(()) => delivery.acker.ack(BasicAckOptions::default()).await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot record a message from the dead queue; it stays there");
                tokio::time::sleep(DEAD_QUEUE_PAUSE).await;
                requeue(&delivery).await
            }
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, "could not settle a dead-queue delivery");
        }
    }

    /// A passive declare returns the ready count without touching the queue.
    async fn sample_depths(&self, channel: &Channel, topology: &Topology) {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        for queue in topology.queues() {
            if let Ok(q) = channel
                .queue_declare(queue.into(), passive, FieldTable::default())
                .await
            {
                self.metrics
                    .queue_messages
                    .get_or_create(&label("queue", queue))
                    .set(i64::from(q.message_count()));
            }
        }
    }
}

/// Back to its queue, to be delivered again.
async fn requeue(delivery: &Delivery) -> Result<bool, lapin::Error> {
    delivery
        .acker
        .nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        })
        .await
}

/// The delivery's JSON: a compressed group decompressed. A body that cannot be goes on as it
/// came, to be set aside as undecodable like any corrupt message.
fn body(delivery: &Delivery) -> Cow<'_, [u8]> {
    let encoding = delivery.properties.content_encoding().as_ref();
    message::decompress(encoding.map(|e| e.as_str()), &delivery.data).unwrap_or_else(|error| {
        tracing::warn!(%error, "a message that cannot be decompressed");
        Cow::Borrowed(&delivery.data)
    })
}
