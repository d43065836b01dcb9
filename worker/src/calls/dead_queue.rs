//! The dead queue holds what the broker itself set aside (poison over the delivery limit, or
//! rejected after its last retry) and calls whose dead letter the database refused; each
//! message is copied into the `dead_letters` table, so that people see and replay it like
//! the rest. One that cannot be copied goes back, and after `broker.dead_delivery_limit`
//! deliveries the broker parks it in `<prefix>.dead.parked`: nothing cycles for ever.

use std::sync::Arc;
use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use shared::broker::headers::{Attempts, Death, SetAside};
use shared::store::dead_letters::Reason;
use tokio::sync::watch;

use super::settle::{body, Settler};
use crate::failure::{self, Failure};

/// After failing to record a message because the database may be down, wait this long
/// before handing it back: with the default delivery limit, the dead queue rides out about
/// ten minutes of outage before parking anything.
const OUTAGE_PAUSE: Duration = Duration::from_secs(30);
/// After Postgres refused the record itself, which no wait changes: only enough not to spin.
const REFUSAL_PAUSE: Duration = Duration::from_secs(1);

impl Settler {
    /// `stopping` cuts a pause short: the message goes back at once when the worker stops.
    pub(super) async fn dead(
        self: Arc<Self>,
        delivery: Delivery,
        mut stopping: watch::Receiver<bool>,
    ) {
        let (reason, detail, count) = self.why_dead(&delivery);
        let attempts = Attempts::read(&delivery.properties);
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
                let pause = match failure::classify(&e) {
                    Failure::Refused => REFUSAL_PAUSE,
                    Failure::Transient(_) => OUTAGE_PAUSE,
                };
                tracing::warn!(
                    error = %e,
                    "cannot record a message from the dead queue; it goes back there, and is \
                     parked in <prefix>.dead.parked after broker.dead_delivery_limit deliveries"
                );
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stopping.wait_for(|s| *s) => {}
                }
                // Reject, not nack: on every RabbitMQ version it counts toward the limit.
                delivery
                    .acker
                    .reject(BasicRejectOptions { requeue: true })
                    .await
            }
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, "could not settle a dead-queue delivery");
        }
    }

    /// The reason, the detail and the attempts a dead-queue message is recorded with.
    fn why_dead(&self, delivery: &Delivery) -> (Reason, String, i64) {
        if let Some(set_aside) = SetAside::read(&delivery.properties) {
            let reason = set_aside.reason.parse().unwrap_or(Reason::DatabaseRejected);
            return (reason, set_aside.detail, 1);
        }
        let attempts = Attempts::read(&delivery.properties);
        let work_queue = &self.publisher.topology().work_queue;
        match Death::read(&delivery.properties, work_queue) {
            Some(d) if d.reason == "delivery_limit" => {
                let count = d.delivery_count.unwrap_or(i64::from(self.delivery_limit));
                (
                    Reason::Poison,
                    format!(
                        "delivered {count} times without being settled: a worker crashed or \
                         panicked on it each time (broker.delivery_limit)"
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
        }
    }
}
