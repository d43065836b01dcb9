//! What a finished batch needs: the handler's verdict per message turned into broker
//! actions, after the batch's probe work is queued. Messages that failed one by one are
//! settled first, then every other one with a single multiple-ack.

use std::borrow::Cow;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::FutureExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use shared::broker::headers::{self, Attempts, SetAside};
use shared::broker::{PublishError, Publisher};
use shared::message;
use shared::metrics::label;
use shared::probe_work::{self, Probe, ProbeWork};
use shared::store::dead_letters::Reason;
use tracing::Instrument;

use super::handler::{panic_message, Handled, Handler, Outcome};
use crate::metrics::Metrics;
use crate::retry::{Next, Retrier};

/// Publishing a batch's probe work is tried this often, this far apart, before the batch is
/// requeued: a few seconds, past the publisher's reconnect back-off.
const PROBE_PUBLISH_TRIES: u32 = 5;
const PROBE_PUBLISH_PAUSE: Duration = Duration::from_millis(500);

pub struct Settler {
    pub handler: Handler,
    pub retrier: Retrier,
    /// Sends the unfinished calls of a group back alone, and probe work on.
    pub publisher: Publisher,
    /// `<prefix>.probes`.
    pub probe_queue: String,
    pub metrics: Metrics,
    /// `broker.delivery_limit`, for describing poison when the broker does not say.
    pub delivery_limit: u32,
}

impl Settler {
    /// Settles `batch` in a span continuing the trace of its first call and linked to the
    /// traces of all of them (see `shared::trace_context`).
    pub(super) async fn batch(&self, batch: Vec<Delivery>) {
        let span = tracing::info_span!("batch", otel.kind = "consumer", messages = batch.len());
        let traceparents: Vec<String> = batch
            .iter()
            .flat_map(|d| headers::traceparents(&d.properties))
            .collect();
        shared::trace_context::continue_from(&span, &traceparents);
        self.settle_batch(batch).instrument(span).await;
    }

    async fn settle_batch(&self, batch: Vec<Delivery>) {
        let bodies: Vec<Cow<[u8]>> = batch.iter().map(body).collect();
        let calls: Vec<Vec<&[u8]>> = bodies.iter().map(|b| message::split(b)).collect();
        let payloads: Vec<&[u8]> = calls.iter().flatten().copied().collect();
        let handled = self.outcomes(&payloads).await;
        if let Err(e) = self.queue_probes(handled.probes).await {
            // Stored, but not yet probed: delivered again, each is stored again (changing
            // nothing) and its probe queued then.
            tracing::warn!(error = %e, "cannot queue the batch's media probes; requeueing the batch");
            for delivery in &batch {
                if let Err(e) = requeue(delivery).await {
                    tracing::warn!(error = %e, "could not requeue a delivery; the broker will redeliver it");
                }
            }
            return;
        }
        let mut outcomes = handled.outcomes.into_iter();
        let mut last_done = None;
        for (delivery, calls) in batch.iter().zip(&calls) {
            let outcomes: Vec<Outcome> = outcomes.by_ref().take(calls.len()).collect();
            let settled = match &outcomes[..] {
                [Outcome::Transient { class, error }] => {
                    self.retry(delivery, calls[0], class, error).await
                }
                [Outcome::Unrecordable(detail)] => {
                    match self
                        .publisher
                        .publish_dead(calls[0], set_aside(detail))
                        .await
                    {
                        Ok(()) => delivery.acker.ack(BasicAckOptions::default()).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot hand a call to the dead queue; requeueing it");
                            requeue(delivery).await
                        }
                    }
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

    /// Some calls of a group failed (transiently, by panicking, or unrecordably): each goes
    /// on alone, and the group is acked once all are confirmed. A call that failed for a while goes to its
    /// first delay queue, as it would have alone (back on the work queue it would meet the
    /// same outage at once); one that panicked goes back to the work queue, to reach the
    /// delivery limit alone. Calls of the group that were stored stay stored.
    async fn unfinished_group(
        &self,
        delivery: &Delivery,
        calls: &[&[u8]],
        outcomes: &[Outcome],
    ) -> Result<bool, lapin::Error> {
        let unfinished: Vec<(usize, &[u8], &Outcome)> = calls
            .iter()
            .zip(outcomes)
            .enumerate()
            .filter(|(_, (_, outcome))| **outcome != Outcome::Done)
            .map(|(index, (call, outcome))| (index, *call, outcome))
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
        let sent = join_all(unfinished.iter().map(|(index, call, outcome)| {
            self.send_on_alone(call, outcome, attempts.of_call(*index, calls.len()))
        }))
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
        attempts: Attempts,
    ) -> Result<(), PublishError> {
        if let Outcome::Unrecordable(detail) = outcome {
            return self.publisher.publish_dead(call, set_aside(detail)).await;
        }
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

    /// The probes of the calls just stored, onto the probe queue (confirmed) before any of
    /// their messages is acked: a worker killed in between leaves the messages unacked, and
    /// their redelivery queues the probes. One message per recording host.
    async fn queue_probes(&self, probes: Vec<Probe>) -> Result<(), PublishError> {
        let count = probes.len() as u64;
        let mut unsent: Vec<Vec<u8>> = probe_work::by_host(probes)
            .iter()
            .map(ProbeWork::to_bytes)
            .collect();
        let mut tries = 1;
        // A publisher reconnecting answers at once for a second: requeueing the batch on its
        // first refusal would spin it through the queue toward the delivery limit.
        while !unsent.is_empty() {
            let sent = join_all(
                unsent
                    .iter()
                    .map(|work| self.publisher.publish_probe_work(&self.probe_queue, work)),
            )
            .await;
            let (mut again, mut failed) = (Vec::new(), None);
            for (work, sent) in unsent.into_iter().zip(sent) {
                if let Err(e) = sent {
                    again.push(work);
                    failed = Some(e);
                }
            }
            unsent = again;
            if let Some(e) = failed {
                if tries == PROBE_PUBLISH_TRIES {
                    return Err(e);
                }
                tries += 1;
                tokio::time::sleep(PROBE_PUBLISH_PAUSE).await;
            }
        }
        self.metrics.probes_queued.inc_by(count);
        Ok(())
    }

    /// A panic outside the per-message steps would condemn the whole batch; handled again
    /// one by one, only the message that causes it panics.
    async fn outcomes(&self, payloads: &[&[u8]]) -> Handled {
        let handled = AssertUnwindSafe(self.handler.handle_batch(payloads))
            .catch_unwind()
            .await;
        match handled {
            Ok(handled) => handled,
            Err(panic) if payloads.len() == 1 => Handled {
                outcomes: vec![Outcome::Panicked(panic_message(&*panic))],
                probes: Vec::new(),
            },
            Err(_) => {
                let mut all = Handled {
                    outcomes: Vec::with_capacity(payloads.len()),
                    probes: Vec::new(),
                };
                for one in payloads.chunks(1) {
                    let handled = AssertUnwindSafe(self.handler.handle_batch(one))
                        .catch_unwind()
                        .await;
                    match handled {
                        Ok(mut handled) => {
                            all.outcomes.push(handled.outcomes.remove(0));
                            all.probes.append(&mut handled.probes);
                        }
                        Err(panic) => all.outcomes.push(Outcome::Panicked(panic_message(&*panic))),
                    }
                }
                all
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
}

/// The headers of a call the database refused, put on the dead queue by hand.
fn set_aside(detail: &str) -> lapin::types::FieldTable {
    SetAside {
        reason: Reason::DatabaseRejected.as_str().to_owned(),
        detail: detail.to_owned(),
    }
    .to_headers()
}

/// Back to its queue, to be delivered again.
pub(super) async fn requeue(delivery: &Delivery) -> Result<bool, lapin::Error> {
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
pub(super) fn body(delivery: &Delivery) -> Cow<'_, [u8]> {
    let encoding = delivery.properties.content_encoding().as_ref();
    message::decompress(encoding.map(|e| e.as_str()), &delivery.data).unwrap_or_else(|error| {
        tracing::warn!(%error, "a message that cannot be decompressed");
        Cow::Borrowed(&delivery.data)
    })
}
