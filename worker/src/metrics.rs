//! What a worker counts, served at its /metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::BasicProperties;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use shared::broker::Publisher;
use shared::metrics::{label, Label, LabeledCounter, PoolGauges, Registry};
use sqlx::PgPool;

/// What a probe can end in, as `probes` counts it.
const PROBE_OUTCOMES: [&str; 6] = [
    "reachable",
    "unreachable",
    "refused",
    "circuit_open",
    "deferred",
    "undecodable",
];

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    publisher: Publisher,
    pool: PoolGauges,
    /// Per queue, when the message a consumer of this worker took last was published.
    last_delivered: Arc<Mutex<HashMap<String, u64>>>,
    pub queue_consumers: Family<Label, Gauge>,
    sessions_up: Family<Label, Gauge>,
    pub queue_oldest_age: Family<Label, Gauge>,
    pub batch_write_seconds: Histogram,
    pub post_to_row_seconds: Histogram,
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

impl Metrics {
    /// Counts the worker's work and samples `publisher`'s and `pool`'s gauges when scraped;
    /// `max_connections` is the pool's configured ceiling.
    pub fn new(publisher: Publisher, pool: PgPool, max_connections: u32) -> Self {
        let mut registry = Registry::with_prefix("callq_worker");
        publisher.metrics().register(&mut registry);
        let pool = PoolGauges::register(pool, max_connections, &mut registry);
        shared::metrics::register_build_info(&mut registry);
        let metrics = Self {
            registry: Arc::default(),
            publisher,
            pool,
            last_delivered: Arc::default(),
            queue_consumers: Family::default(),
            sessions_up: Family::default(),
            queue_oldest_age: Family::default(),
            // From a small batch on an idle database to past the default
            // database.acquire_timeout_ms plus a slow commit, doubling each bucket.
            batch_write_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            // From a call stored while its POST is still being answered to past the last
            // retry of the default broker.retry_delays_ms (hours), doubling each bucket.
            post_to_row_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 22)),
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
        let m = &metrics;
        // Every label value known in advance starts at 0: alerts take the increase of these
        // counters, which a series born at 1 would hide.
        for reason in shared::store::dead_letters::Reason::ALL {
            let _ = m
                .dead_lettered
                .get_or_create(&label("reason", reason.as_str()));
        }
        for class in crate::failure::TRANSIENT_CLASSES {
            let _ = m.retried.get_or_create(&label("class", class));
        }
        for outcome in PROBE_OUTCOMES {
            let _ = m.probes.get_or_create(&label("outcome", outcome));
        }
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
        registry.register(
            "queue_consumers",
            "Consumers of each queue (any worker's), sampled with queue_messages",
            m.queue_consumers.clone(),
        );
        registry.register(
            "broker_sessions_up",
            "Whether each stage's consuming connection is up with its consumers (1) or being \
             re-established (0), by stage",
            m.sessions_up.clone(),
        );
        registry.register(
            "queue_oldest_ready_age_seconds",
            "How long the oldest ready message of each consumed queue has waited, at most: \
             0 when none is ready, else the age of the message this worker took from it last \
             (the queue is FIFO, so the head was published no earlier), sampled with \
             queue_messages",
            m.queue_oldest_age.clone(),
        );
        registry.register(
            "batch_write_seconds",
            "The transaction that writes a batch (calls, dead letters, handled ids), commit \
             included, whether it commits or fails",
            m.batch_write_seconds.clone(),
        );
        registry.register(
            "post_to_row_seconds",
            "From a call's POST (its received_at) to the commit of its row",
            m.post_to_row_seconds.clone(),
        );
        Self {
            registry: Arc::new(registry),
            ..metrics
        }
    }

    pub fn render(&self) -> String {
        self.publisher.sample_gauges();
        self.pool.sample();
        shared::metrics::render(&self.registry)
    }

    /// Whether `stage`'s consuming session is up.
    pub fn session_up(&self, stage: &'static str, up: bool) {
        self.sessions_up
            .get_or_create(&label("stage", stage))
            .set(i64::from(up));
    }

    /// Notes when the message just taken from `queue` was published (its `timestamp`).
    pub fn delivered(&self, queue: &str, properties: &BasicProperties) {
        let Some(published) = *properties.timestamp() else {
            return;
        };
        if let Ok(mut last) = self.last_delivered.lock() {
            match last.get_mut(queue) {
                Some(at) => *at = published,
                None => {
                    last.insert(queue.to_owned(), published);
                }
            }
        }
    }

    /// Records a sample of `queue`: `ready` messages and `consumers`.
    pub fn sampled(&self, queue: &str, ready: u32, consumers: u32) {
        let queue_label = label("queue", queue);
        self.queue_messages
            .get_or_create(&queue_label)
            .set(i64::from(ready));
        self.queue_consumers
            .get_or_create(&queue_label)
            .set(i64::from(consumers));
        let last = self
            .last_delivered
            .lock()
            .ok()
            .and_then(|last| last.get(queue).copied());
        let age = match (ready, last) {
            (0, _) => Some(0),
            (_, Some(published)) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO)
                    .as_secs();
                Some(now.saturating_sub(published))
            }
            // Nothing taken from it yet: not a queue this worker consumes, or one whose
            // consumers have not been handed a message yet; no age is better than a wrong one.
            (_, None) => None,
        };
        if let Some(age) = age {
            self.queue_oldest_age
                .get_or_create(&queue_label)
                .set(i64::try_from(age).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        let settings = shared::config::Settings::defaults();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .expect("a lazy pool");
        Metrics::new(Publisher::new(settings.broker, "test"), pool, 1)
    }

    fn age(metrics: &Metrics, queue: &str) -> Option<i64> {
        let sample = format!("callq_worker_queue_oldest_ready_age_seconds{{queue=\"{queue}\"}} ");
        metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(&sample)?.parse().ok())
    }

    #[tokio::test]
    async fn an_empty_queue_has_an_oldest_age_of_zero() {
        let metrics = metrics();
        metrics.sampled("q", 0, 1);
        assert_eq!(age(&metrics, "q"), Some(0));
    }

    #[tokio::test]
    async fn a_backlog_is_as_old_as_the_message_taken_last() {
        let metrics = metrics();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        metrics.delivered("q", &BasicProperties::default().with_timestamp(now - 600));
        metrics.sampled("q", 7, 1);
        let seen = age(&metrics, "q").expect("an age");
        assert!((600..700).contains(&seen), "{seen}");
    }

    #[tokio::test]
    async fn a_backlog_nothing_was_taken_from_has_no_age_rather_than_a_wrong_one() {
        let metrics = metrics();
        metrics.sampled("q", 7, 0);
        assert_eq!(age(&metrics, "q"), None);
    }
}
