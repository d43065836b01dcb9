//! What a publisher counts: how long confirms take, which publishes fail and why, and whether
//! its connection and channels are up. Registered by whichever process owns the publisher.

use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use super::PublishError;
use crate::metrics::{label, LabeledCounter, Registry};

#[derive(Clone)]
pub struct PublishMetrics {
    confirm_seconds: Histogram,
    failures: LabeledCounter,
    pub(super) connections_up: Gauge,
    pub(super) channels_up: Gauge,
}

/// Why a publish got no confirm, each counted from 0 so that the first failure is a rise.
const REASONS: [&str; 5] = [
    "unavailable",
    "reconnecting",
    "timeout",
    "nacked",
    "unroutable",
];

impl Default for PublishMetrics {
    fn default() -> Self {
        let failures = LabeledCounter::default();
        for reason in REASONS {
            let _ = failures.get_or_create(&label("reason", reason));
        }
        Self {
            // From a quorum queue's confirm on a quiet local broker (well under a millisecond
            // to a few) to past the default broker.confirm_timeout_ms, doubling each bucket.
            confirm_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 15)),
            failures,
            connections_up: Gauge::default(),
            channels_up: Gauge::default(),
        }
    }
}

impl PublishMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "publish_confirm_seconds",
            "From a publish to the broker's confirm, for messages the broker confirmed",
            self.confirm_seconds.clone(),
        );
        registry.register(
            "publish_failures",
            "Publishes that got no confirm, by reason: timeout, nacked, unroutable, \
             unavailable, reconnecting",
            self.failures.clone(),
        );
        registry.register(
            "broker_connections_up",
            "Publishing connections to the broker that are open (a publisher holds one)",
            self.connections_up.clone(),
        );
        registry.register(
            "broker_channels_up",
            "Publishing channels (broker.publish_channels) that are open",
            self.channels_up.clone(),
        );
    }

    pub(super) fn confirmed(&self, waited: Duration) {
        self.confirm_seconds.observe(waited.as_secs_f64());
    }

    pub(super) fn failed(&self, error: &PublishError) {
        let reason = match error {
            PublishError::Unavailable(_) => "unavailable",
            PublishError::Reconnecting => "reconnecting",
            PublishError::ConfirmTimeout => "timeout",
            PublishError::Nacked => "nacked",
            PublishError::Unroutable => "unroutable",
        };
        self.failures.get_or_create(&label("reason", reason)).inc();
    }
}
