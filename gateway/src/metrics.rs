//! What a gateway counts, served at its /metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use shared::broker::Publisher;
use shared::metrics::{label, HistogramFamily, LabeledCounter, Labels2, PoolGauges, Registry};
use sqlx::PgPool;

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    publisher: Publisher,
    pool: PoolGauges,
    request_seconds: HistogramFamily<Labels2>,
    pub accepted: Counter,
    pub refused: LabeledCounter,
    pub published: Counter,
    pub messages: Counter,
    pub replayed: Counter,
    pub texts_published: Counter,
    pub operator_refusals: Counter,
}

/// From a cached 401 (tens of microseconds) to past the default http.request_timeout_ms,
/// doubling each bucket: the p99 of a healthy POST and of one stuck on a confirm both land
/// inside a bucket, not in +Inf.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

impl Metrics {
    /// Counts the gateway's own work and samples `publisher`'s and `pool`'s gauges when
    /// scraped; `max_connections` is the pool's configured ceiling.
    pub fn new(publisher: Publisher, pool: PgPool, max_connections: u32) -> Self {
        let accepted = Counter::default();
        let refused = LabeledCounter::default();
        let published = Counter::default();
        let messages = Counter::default();
        let replayed = Counter::default();
        let texts_published = Counter::default();
        let operator_refusals = Counter::default();
        let mut registry = Registry::with_prefix("callq_gateway");
        let request_seconds: HistogramFamily<Labels2> =
            HistogramFamily::new_with_constructor(request_buckets);
        registry.register(
            "http_request_duration_seconds",
            "From a request's head to its answer, by route (the matched path template, \
             `unmatched` for none) and status class (2xx, 4xx, 5xx)",
            request_seconds.clone(),
        );
        publisher.metrics().register(&mut registry);
        let pool = PoolGauges::register(pool, max_connections, &mut registry);
        shared::metrics::register_build_info(&mut registry);
        registry.register(
            "calls_accepted",
            "Calls answered 2xx (after the broker confirmed them)",
            accepted.clone(),
        );
        registry.register(
            "calls_refused",
            "Calls answered with an error, by cause",
            refused.clone(),
        );
        registry.register(
            "calls_published",
            "Calls the broker confirmed",
            published.clone(),
        );
        registry.register(
            "messages_published",
            "Messages the broker confirmed; a group of calls counts once",
            messages.clone(),
        );
        registry.register(
            "dead_letters_replayed",
            "Dead letters replayed through the admin API",
            replayed.clone(),
        );
        registry.register(
            "texts_published",
            "Text communications (chats, tickets, emails) the broker confirmed",
            texts_published.clone(),
        );
        registry.register(
            "operator_refusals",
            "Calls and texts a Qolio-compatible integration refused (422) for an unknown or \
             inactive operator",
            operator_refusals.clone(),
        );
        Self {
            registry: Arc::new(registry),
            publisher,
            pool,
            request_seconds,
            accepted,
            refused,
            published,
            messages,
            replayed,
            texts_published,
            operator_refusals,
        }
    }
}

impl Metrics {
    /// Counts what a call-taking request was answered; the cause is the error's `code`.
    pub async fn count_answers(
        State(metrics): State<Metrics>,
        request: Request,
        next: Next,
    ) -> Response {
        let response = next.run(request).await;
        let status = response.status();
        if status.is_success() {
            metrics.accepted.inc();
        } else {
            let cause = status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase()
                .replace(' ', "_");
            metrics.refused.get_or_create(&label("cause", cause)).inc();
        }
        response
    }

    /// Times every request by its route and status class.
    pub async fn time_requests(
        State(metrics): State<Metrics>,
        request: Request,
        next: Next,
    ) -> Response {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str)
            .to_owned();
        let started = Instant::now();
        let response = next.run(request).await;
        let class = format!("{}xx", response.status().as_u16() / 100);
        metrics
            .request_seconds
            .get_or_create(&[("route", route), ("status", class)])
            .observe(started.elapsed().as_secs_f64());
        response
    }

    pub async fn render(State(metrics): State<Metrics>) -> impl IntoResponse {
        metrics.publisher.sample_gauges();
        metrics.pool.sample();
        (
            [(header::CONTENT_TYPE, shared::metrics::CONTENT_TYPE)],
            shared::metrics::render(&metrics.registry),
        )
    }
}
