//! Prometheus metrics. Each process owns its registry instead of a global one, so that the
//! gateways and workers a test runs side by side in one process keep their counts apart.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
pub use prometheus_client::registry::Registry;

/// One label, e.g. `("reason", "poison")`.
pub type Label = [(&'static str, String); 1];

/// Counters split by one label.
pub type LabeledCounter = Family<Label, Counter>;

pub fn label(key: &'static str, value: impl Into<String>) -> Label {
    [(key, value.into())]
}

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry in the OpenMetrics text format Prometheus scrapes.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}
