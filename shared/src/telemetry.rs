//! Logging set up once per process from `[log]`, and traces exported over OTLP when the
//! standard `OTEL_*` variables ask for them (off by default): on when
//! `OTEL_TRACES_EXPORTER=otlp`, or when it is unset and `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; off with `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none`. The exporter speaks OTLP over HTTP/protobuf and reads its
//! endpoint, headers and timeout from the same variables; the batch processor reads
//! `OTEL_BSP_*`, the sampler `OTEL_TRACES_SAMPLER`, the resource `OTEL_SERVICE_NAME` and
//! `OTEL_RESOURCE_ATTRIBUTES`.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogFormat, LogSettings};

static TRACES: AtomicBool = AtomicBool::new(false);

/// Whether this process exports traces; when not, no trace context is taken or carried.
pub fn traces_enabled() -> bool {
    TRACES.load(Ordering::Relaxed)
}

/// Flushes the spans not yet exported when dropped: hold it until the process ends.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("exporting the last spans failed: {error}");
            }
        }
    }
}

/// `service` names the process in traces unless `OTEL_SERVICE_NAME` does.
pub fn init(settings: &LogSettings, service: &'static str) -> Telemetry {
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer();
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match settings.format {
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
        LogFormat::Text => fmt.with_filter(filter).boxed(),
    };
    let provider = match traces_wanted(|name| std::env::var(name).ok()) {
        Ok(false) => None,
        Ok(true) => match provider(service) {
            Ok(provider) => Some(provider),
            Err(error) => {
                eprintln!("traces are off: cannot build the OTLP exporter: {error}");
                None
            }
        },
        Err(unsupported) => {
            eprintln!("traces are off: OTEL_TRACES_EXPORTER={unsupported} is not supported (otlp or none)");
            None
        }
    };
    // Spans of this workspace's crates at info, whatever `[log]` filters out of the logs: a
    // quiet log (warn) must not leave traces empty.
    let spans = Targets::new()
        .with_target("gateway", Level::INFO)
        .with_target("worker", Level::INFO)
        .with_target("shared", Level::INFO);
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service))
            .with_filter(spans)
            .boxed()
    });
    // try_init: tests start several applications in one process.
    let installed = Registry::default()
        .with(fmt)
        .with(traces)
        .try_init()
        .is_ok();
    if installed && provider.is_some() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        TRACES.store(true, Ordering::Relaxed);
    }
    Telemetry { provider }
}

fn provider(
    service: &'static str,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Whether the `OTEL_*` variables (read through `var`) ask for traces; the exporter named
/// when it is not one this build has.
fn traces_wanted(var: impl Fn(&str) -> Option<String>) -> Result<bool, String> {
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(false);
    }
    match var("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
        Some("none") => Ok(false),
        Some("otlp") => Ok(true),
        Some(other) if !other.is_empty() => Err(other.to_owned()),
        _ => Ok(var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()),
    }
}

#[cfg(test)]
mod tests {
    use super::traces_wanted;

    fn wanted(vars: &[(&str, &str)]) -> Result<bool, String> {
        traces_wanted(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn traces_are_off_without_any_otel_variable() {
        assert_eq!(wanted(&[]), Ok(false));
    }

    #[test]
    fn an_endpoint_turns_traces_on() {
        assert_eq!(
            wanted(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]),
            Ok(true)
        );
        assert_eq!(
            wanted(&[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://c:4318/v1/traces"
            )]),
            Ok(true)
        );
    }

    #[test]
    fn the_exporter_variable_and_the_sdk_switch_win_over_an_endpoint() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        assert_eq!(
            wanted(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]),
            Ok(false)
        );
        assert_eq!(
            wanted(&[endpoint, ("OTEL_SDK_DISABLED", "true")]),
            Ok(false)
        );
        assert_eq!(wanted(&[("OTEL_TRACES_EXPORTER", "otlp")]), Ok(true));
        assert_eq!(
            wanted(&[endpoint, ("OTEL_TRACES_EXPORTER", "zipkin")]),
            Err("zipkin".into())
        );
    }
}
