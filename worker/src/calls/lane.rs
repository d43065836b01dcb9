//! One channel's consumer of the work queue, taking a batch (up to `worker.batch_size` calls,
//! or what arrived within `worker.batch_wait_ms`) and settling it before taking the next, so
//! that a multiple-ack never covers a delivery of a batch still being written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::BasicCancelOptions;
use lapin::{Channel, Consumer as Stream};
use shared::broker::{self, headers};
use tokio::sync::watch;

use super::settle::Settler;

#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub lanes: usize,
    /// Unacknowledged deliveries per lane; more than a batch, so the next one is on its way
    /// while one is written.
    pub prefetch: u16,
    pub size: usize,
    pub wait: Duration,
}

pub(super) struct Lane {
    pub(super) settler: Arc<Settler>,
    pub(super) batching: Batching,
    pub(super) channel: Channel,
    pub(super) stream: Stream,
    pub(super) stopped: watch::Receiver<bool>,
    /// Set while batches close full: a backlog is waiting.
    pub(super) backlog: Arc<AtomicBool>,
}

impl Lane {
    /// Returns why it ended (it only ends on its own when the broker is lost).
    pub(super) async fn run(mut self) -> String {
        loop {
            let stopped = &mut self.stopped;
            let first = tokio::select! {
                _ = async { let _ = stopped.wait_for(|s| *s).await; } => None,
                next = self.stream.next() => Some(next),
            };
            let Some(first) = first else {
                // A lost channel would never answer the cancel.
                if self.channel.status().connected() {
                    let cancel = self
                        .channel
                        .basic_cancel(self.stream.tag(), BasicCancelOptions::default());
                    broker::while_stopping("work-queue consumer cancel", cancel).await;
                }
                return "stopped".into();
            };
            let queue = self.stream.queue();
            let metrics = &self.settler.metrics;
            let mut batch = match first {
                Some(Ok(delivery)) => {
                    metrics.delivered(queue.as_str(), &delivery.properties);
                    vec![delivery]
                }
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
                            metrics.delivered(queue.as_str(), &delivery.properties);
                            calls += headers::calls(&delivery.properties);
                            batch.push(delivery);
                        }
                        // Settle what was taken; the loop above then sees the end.
                        _ => break,
                    },
                }
            }
            self.backlog
                .store(calls >= self.batching.size, Ordering::Relaxed);
            self.settler.batch(batch).await;
        }
    }
}
