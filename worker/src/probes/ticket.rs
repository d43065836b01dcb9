//! A probe-work delivery is acked once every probe it holds is settled: its result written,
//! or the probe handed on to a delay queue (confirmed). Until then a worker killed at any
//! point leaves it unacked, and the broker delivers it again.

use std::sync::atomic::{AtomicUsize, Ordering};

use lapin::options::BasicAckOptions;
use lapin::Acker;

pub struct Ticket {
    acker: Acker,
    unsettled: AtomicUsize,
}

impl Ticket {
    pub fn new(acker: Acker, probes: usize) -> Self {
        Self {
            acker,
            unsettled: AtomicUsize::new(probes),
        }
    }

    /// One of its probes is settled; the last one acks the delivery.
    pub async fn settle_one(&self) {
        if self.unsettled.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.ack().await;
        }
    }

    pub async fn ack(&self) {
        if let Err(e) = self.acker.ack(BasicAckOptions::default()).await {
            tracing::warn!(error = %e, "could not ack probe work; the broker will redeliver it");
        }
    }
}
