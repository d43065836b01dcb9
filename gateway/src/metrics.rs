//! What a gateway counts, served at its /metrics.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use shared::metrics::{label, LabeledCounter, Registry};

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub accepted: Counter,
    pub refused: LabeledCounter,
    pub published: Counter,
    pub messages: Counter,
    pub replayed: Counter,
    pub texts_published: Counter,
    pub operator_refusals: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let accepted = Counter::default();
        let refused = LabeledCounter::default();
        let published = Counter::default();
        let messages = Counter::default();
        let replayed = Counter::default();
        let texts_published = Counter::default();
        let operator_refusals = Counter::default();
        let mut registry = Registry::with_prefix("callq_gateway");
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

    pub async fn render(State(metrics): State<Metrics>) -> impl IntoResponse {
        (
            [(header::CONTENT_TYPE, shared::metrics::CONTENT_TYPE)],
            shared::metrics::render(&metrics.registry),
        )
    }
}
