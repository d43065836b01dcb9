//! Retries through RabbitMQ itself: a message that met a transient failure is republished
//! onto the delay queue of its next attempt (confirmed before the original is acked) and
//! comes back to the work queue when that queue's TTL dead-letters it. Nothing sleeps
//! while holding a delivery and nothing spins on requeues.

use std::time::Duration;

use shared::broker::headers::Attempts;
use shared::broker::{PublishError, Publisher, RetryQueue};

#[derive(Clone)]
pub struct Retrier {
    publisher: Publisher,
    steps: Vec<RetryQueue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// On a delay queue, back on the work queue after about this long.
    Delayed(Duration),
    /// The schedule is used up.
    Exhausted,
}

impl Retrier {
    pub fn new(publisher: Publisher) -> Self {
        let steps = publisher.topology().retry_queues.clone();
        Self { publisher, steps }
    }

    /// `attempts` includes the failure just met.
    pub async fn schedule(
        &self,
        payload: &[u8],
        attempts: &Attempts,
    ) -> Result<Next, PublishError> {
        let step = (attempts.failed as usize)
            .checked_sub(1)
            .and_then(|i| self.steps.get(i));
        let Some(step) = step else {
            return Ok(Next::Exhausted);
        };
        let wait = jitter(step.delay);
        self.publisher
            .publish_delayed(&step.name, payload, attempts.to_headers(), wait)
            .await?;
        Ok(Next::Delayed(wait))
    }
}

/// Between 75 % and 100 % of the step: calls that failed together (a database outage)
/// come back spread out. Never above the queue's TTL, which caps it anyway.
fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(rand::random_range(0.75..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_the_step() {
        let step = Duration::from_millis(1000);
        for _ in 0..1000 {
            let wait = jitter(step);
            assert!(
                wait >= Duration::from_millis(750) && wait <= step,
                "{wait:?}"
            );
        }
    }
}
