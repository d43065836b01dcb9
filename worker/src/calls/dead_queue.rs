//! The dead queue holds what the broker itself set aside (poison over the delivery limit, or
//! rejected after its last retry); each message is copied into the `dead_letters` table, so
//! that people see and replay it like the rest.

use std::sync::Arc;
use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use shared::broker::headers::{Attempts, Death};
use shared::store::dead_letters::Reason;

use super::settle::{body, requeue, Settler};

/// After failing to record a dead-queue message (the database is down), wait before
/// handing it back, so that the dead queue is not spun through.
const DEAD_QUEUE_PAUSE: Duration = Duration::from_secs(1);

impl Settler {
    pub(super) async fn dead(self: Arc<Self>, delivery: Delivery) {
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
}
