//! Building and running the gateway: binds first (port 0 works), so tests know the port.

use std::sync::Arc;

use futures_util::FutureExt;
use secrecy::ExposeSecret;
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

/// Shorter admin tokens can be guessed by whoever reaches the admin API.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "admin.token (APP_ADMIN__TOKEN) is {0} bytes; it must be at least \
         {MIN_ADMIN_TOKEN_BYTES} (e.g. the output of `openssl rand -hex 24`), or empty to \
         disable the admin API"
    )]
    ShortAdminToken(usize),
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    /// With `admin.listen` set: the admin API's own listener and router.
    admin: Option<(TcpListener, axum::Router)>,
    timeouts: Timeouts,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let token = settings.admin.token.expose_secret().len();
        if token > 0 && token < MIN_ADMIN_TOKEN_BYTES {
            return Err(StartError::ShortAdminToken(token).into());
        }
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
        let admin_listener = match state.settings.admin.listen {
            Some(address) => Some(TcpListener::bind(address).await?),
            None => None,
        };
        let timeouts = Timeouts::new(&state.settings.http);
        let (router, admin_router) = crate::http::routers(state);
        Ok(Self {
            listener,
            admin: admin_listener.zip(admin_router),
            timeouts,
            router,
        })
    }

    /// The admin listener's port, when `admin.listen` is set.
    pub fn admin_port(&self) -> Option<u16> {
        let (listener, _) = self.admin.as_ref()?;
        listener.local_addr().ok().map(|a| a.port())
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
        let shutdown = shutdown.shared();
        let public = connection::serve(self.listener, self.router, self.timeouts, shutdown.clone());
        match self.admin {
            Some((listener, router)) => {
                let admin = connection::serve(listener, router, self.timeouts, shutdown);
                tokio::try_join!(public, admin).map(|_| ())
            }
            None => public.await,
        }
    }
}
