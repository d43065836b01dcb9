//! What a worker counts, served at its /metrics.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use shared::metrics::{Label, LabeledCounter, Registry};

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub stored: Counter,
    pub texts_stored: Counter,
    pub batches: Counter,
    pub failed_batches: Counter,
    pub dead_lettered: LabeledCounter,
    pub retried: LabeledCounter,
    pub panics: Counter,
    pub replayed: Counter,
    pub queue_messages: Family<Label, Gauge>,
    pub probes_queued: Counter,
    pub probes: LabeledCounter,
    pub probe_retries: Counter,
    pub probe_results_written: Counter,
    pub open_circuits: Gauge,
    pub probe_seconds: Histogram,
    pub probe_lag_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Self {
            registry: Arc::default(),
            stored: Counter::default(),
            texts_stored: Counter::default(),
            batches: Counter::default(),
            failed_batches: Counter::default(),
            dead_lettered: LabeledCounter::default(),
            retried: LabeledCounter::default(),
            panics: Counter::default(),
            replayed: Counter::default(),
            queue_messages: Family::default(),
            probes_queued: Counter::default(),
            probes: LabeledCounter::default(),
            probe_retries: Counter::default(),
            probe_results_written: Counter::default(),
            open_circuits: Gauge::default(),
            // 1 ms to about 16 s: loopback answers to probes that wait out their deadline.
            probe_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            // 10 ms to about 3 hours: at once, to after the last retry.
            probe_lag_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 21)),
        };
        let mut registry = Registry::with_prefix("callq_worker");
        let m = &metrics;
        registry.register(
            "calls_stored",
            "Calls committed to Postgres",
            m.stored.clone(),
        );
        registry.register(
            "texts_stored",
            "Text communications (chats, tickets, emails) committed to Postgres",
            m.texts_stored.clone(),
        );
        registry.register(
            "batches",
            "Transactions that wrote a batch of calls; calls_stored / batches is the mean batch",
            m.batches.clone(),
        );
        registry.register(
            "failed_batches",
            "Transactions of a batch that met a transient database error (outage, deadlock, ...); \
             their calls are retried",
            m.failed_batches.clone(),
        );
        registry.register(
            "calls_dead_lettered",
            "Calls set aside in the dead_letters table, by reason",
            m.dead_lettered.clone(),
        );
        registry.register(
            "calls_retried",
            "Transient failures sent to a delay queue for a later attempt, by class",
            m.retried.clone(),
        );
        registry.register(
            "handler_panics",
            "Messages whose handling panicked (requeued; poison after the delivery limit)",
            m.panics.clone(),
        );
        registry.register(
            "dead_letters_replayed",
            "Dead letters replayed automatically after their operator was bound",
            m.replayed.clone(),
        );
        registry.register(
            "queue_messages",
            "Messages ready in each queue, sampled every few seconds",
            m.queue_messages.clone(),
        );
        registry.register(
            "probes_queued",
            "Media probes the calls stage queued for the calls it stored",
            m.probes_queued.clone(),
        );
        registry.register(
            "probes",
            "Media probes settled, by outcome: reachable, unreachable, refused, circuit_open, \
             deferred (put off: the host's line was full), undecodable",
            m.probes.clone(),
        );
        registry.register(
            "probe_retries",
            "Probes handed to a delay queue to be tried again (the recording may appear later)",
            m.probe_retries.clone(),
        );
        registry.register(
            "probe_results_written",
            "Calls whose media columns a probe result changed",
            m.probe_results_written.clone(),
        );
        registry.register(
            "open_circuits",
            "Media hosts whose circuit is open: their probes are recorded unreachable at once",
            m.open_circuits.clone(),
        );
        registry.register(
            "probe_duration_seconds",
            "Time a probe spent on the network (slot waits excluded)",
            m.probe_seconds.clone(),
        );
        registry.register(
            "probe_lag_seconds",
            "From a call's commit (or its reprobe) to its probe's result written",
            m.probe_lag_seconds.clone(),
        );
        Self {
            registry: Arc::new(registry),
            ..metrics
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        shared::metrics::render(&self.registry)
    }
}
