//! One span and one `info` line per request (method, path, status, duration), which the
//! filter `gateway::http::access_log=warn` silences. The span is
//! the root of the call's trace: its context goes into the AMQP headers of the message that
//! carries the call (see `shared::tracing_context`).

use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{MakeSpan, OnResponse, TraceLayer};
use tracing::Span;

pub fn layer() -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan, (), AccessLog> {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_request(())
        .on_response(AccessLog)
}

#[derive(Clone, Copy)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        // The route's template, not the path: span names stay few whatever clients send.
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        tracing::info_span!(
            "request",
            otel.name = %format_args!("{} {route}", request.method()),
            otel.kind = "server",
            method = %request.method(),
            path = %request.uri().path(),
            status = tracing::field::Empty,
        )
    }
}

#[derive(Clone, Copy)]
pub struct AccessLog;

impl<B> OnResponse<B> for AccessLog {
    fn on_response(self, response: &Response<B>, latency: Duration, span: &Span) {
        let status = response.status().as_u16();
        span.record("status", status);
        tracing::info!(
            status,
            duration_ms = latency.as_secs_f64() * 1000.0,
            "answered"
        );
    }
}
