//! W3C trace context across the broker: a call's `traceparent` is taken from the span that
//! accepted it and put in the AMQP headers of the message that carries it (see
//! `broker::headers`), and a worker's span picks it up as its parent. Without telemetry
//! (the default) nothing is taken and nothing is set.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of `span`, when traces are exported.
pub fn traceparent(span: &Span) -> Option<String> {
    if !crate::telemetry::traces_enabled() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` (not yet entered) a child of the first of `traceparents` and links it to
/// every one of them: a batch holds the calls of many requests, each with a trace of its
/// own, and one span can have one parent only.
pub fn continue_from(span: &Span, traceparents: &[String]) {
    if !crate::telemetry::traces_enabled() {
        return;
    }
    let propagator = TraceContextPropagator::new();
    let mut parent = None;
    for traceparent in traceparents {
        let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.clone())]);
        let context = propagator.extract(&carrier);
        let remote = context.span().span_context().clone();
        if !remote.is_valid() {
            continue;
        }
        span.add_link(remote);
        parent.get_or_insert(context);
    }
    if let Some(parent) = parent {
        let _ = span.set_parent(parent);
    }
}
