//! What a worker counts, served at its /metrics.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use shared::metrics::{Label, LabeledCounter, Registry};

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub stored: Counter,
    pub batches: Counter,
    pub failed_batches: Counter,
    pub dead_lettered: LabeledCounter,
    pub retried: LabeledCounter,
    pub panics: Counter,
    pub replayed: Counter,
    pub queue_messages: Family<Label, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let stored = Counter::default();
        let batches = Counter::default();
        let failed_batches = Counter::default();
        let dead_lettered = LabeledCounter::default();
        let retried = LabeledCounter::default();
        let panics = Counter::default();
        let replayed = Counter::default();
        let queue_messages = Family::<Label, Gauge>::default();
        let mut registry = Registry::with_prefix("callq_worker");
        registry.register(
            "calls_stored",
            "Calls committed to Postgres",
            stored.clone(),
        );
        registry.register(
            "batches",
            "Transactions that wrote a batch of calls; calls_stored / batches is the mean batch",
            batches.clone(),
        );
        registry.register(
            "failed_batches",
            "Transactions of a batch that met a transient database error (outage, deadlock, ...); \
             their calls are retried",
            failed_batches.clone(),
        );
        registry.register(
            "calls_dead_lettered",
            "Calls set aside in the dead_letters table, by reason",
            dead_lettered.clone(),
        );
        registry.register(
            "calls_retried",
            "Transient failures sent to a delay queue for a later attempt, by class",
            retried.clone(),
        );
        registry.register(
            "handler_panics",
            "Messages whose handling panicked (requeued; poison after the delivery limit)",
            panics.clone(),
        );
        registry.register(
            "dead_letters_replayed",
            "Dead letters replayed automatically after their operator was bound",
            replayed.clone(),
        );
        registry.register(
            "queue_messages",
            "Messages ready in each queue, sampled every few seconds",
            queue_messages.clone(),
        );
        Self {
            registry: Arc::new(registry),
            stored,
            batches,
            failed_batches,
            dead_lettered,
            retried,
            panics,
            replayed,
            queue_messages,
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        shared::metrics::render(&self.registry)
    }
}
