//! Prometheus metrics. Each process owns its registry instead of a global one, so that the
//! gateways and workers a test runs side by side in one process keep their counts apart.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry;
use sqlx::PgPool;

/// One label, e.g. `("reason", "poison")`.
pub type Label = [(&'static str, String); 1];

/// Two labels, e.g. a route and a status class.
pub type Labels2 = [(&'static str, String); 2];

/// Counters split by one label.
pub type LabeledCounter = Family<Label, Counter>;

/// Histograms split by labels, all with the buckets of one constructor.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

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

/// `build_info{version, commit} 1`: which build answers, so a dashboard can mark rollouts.
/// The commit is the `CALLQ_GIT_COMMIT` the build was given (deploy/Dockerfile takes it as a
/// build argument).
pub fn register_build_info(registry: &mut Registry) {
    let info: Family<Labels2, Gauge> = Family::default();
    info.get_or_create(&[
        ("version", env!("CARGO_PKG_VERSION").to_owned()),
        (
            "commit",
            option_env!("CALLQ_GIT_COMMIT")
                .unwrap_or("unknown")
                .to_owned(),
        ),
    ])
    .set(1);
    registry.register("build_info", "The build this process runs, always 1", info);
}

/// A Postgres pool's connections, read when scraped.
#[derive(Clone)]
pub struct PoolGauges {
    pool: PgPool,
    open: Gauge,
    idle: Gauge,
    max: Gauge,
}

impl PoolGauges {
    pub fn register(pool: PgPool, max: u32, registry: &mut Registry) -> Self {
        let gauges = Self {
            pool,
            open: Gauge::default(),
            idle: Gauge::default(),
            max: Gauge::default(),
        };
        gauges.max.set(i64::from(max));
        registry.register(
            "db_pool_connections",
            "Connections the Postgres pool holds open",
            gauges.open.clone(),
        );
        registry.register(
            "db_pool_idle",
            "Open connections of the Postgres pool not lent to a query",
            gauges.idle.clone(),
        );
        registry.register(
            "db_pool_max",
            "database.max_connections: the pool's ceiling",
            gauges.max.clone(),
        );
        gauges
    }

    pub fn sample(&self) {
        self.open.set(i64::from(self.pool.size()));
        self.idle
            .set(i64::try_from(self.pool.num_idle()).unwrap_or(i64::MAX));
    }
}
