//! Building and running the gateway: binds first (port 0 works), so tests know the port.

use std::sync::Arc;

use shared::broker::Publisher;
use shared::config::Settings;
use tokio::net::TcpListener;

use crate::cache;
use crate::connection::{self, Timeouts};
use crate::database_circuit::DatabaseCircuit;
use crate::grouping::GroupPublisher;
use crate::metrics::Metrics;
use crate::operator_check::OperatorCheck;
use crate::queued::QueuedNotes;
use crate::rate_limit::RateLimiter;
use crate::state::AppState;

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    timeouts: Timeouts,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = shared::store::pool(&settings.database)?;
        let publisher = Publisher::new(settings.broker.clone(), "gateway");
        let metrics = Metrics::new(
            publisher.clone(),
            pool.clone(),
            settings.database.max_connections,
        );
        let database = DatabaseCircuit::new(settings.auth.refresh_pause());
        let state = AppState {
            calls: GroupPublisher::spawn(
                publisher.clone(),
                settings.broker.publish_in_flight,
                settings.broker.group_max_calls,
                metrics.messages.clone(),
            ),
            publisher,
            metrics,
            queued: settings
                .http
                .queued_notes
                .then(|| QueuedNotes::spawn(pool.clone())),
            integrations: cache::integrations(&settings.auth, database.clone()),
            field_definitions: cache::field_definitions(&settings.auth, database.clone()),
            operators: OperatorCheck::new(&settings.auth, database.clone()),
            database,
            rate_limiter: RateLimiter::new(
                settings.http.rate_limit_per_sec,
                settings.http.rate_limit_burst,
            )
            .map(Arc::new),
            pool,
            settings: Arc::new(settings),
        };
        let listener = TcpListener::bind(state.settings.http.listen).await?;
        Ok(Self {
            listener,
            timeouts: Timeouts::new(&state.settings.http),
            router: crate::http::router(state),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests (each bounded by
    /// `http.request_timeout_ms`).
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        connection::serve(self.listener, self.router, self.timeouts, shutdown).await
    }
}
