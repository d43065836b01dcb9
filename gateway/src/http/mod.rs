//! The gateway's HTTP surface, one module per resource.

pub mod access_log;
pub mod auth;
pub mod bindings;
pub mod call_path;
pub mod dead_letters;
pub mod docs;
pub mod error;
pub mod field_definitions;
pub mod health;
pub mod integrations;
pub mod load_shed;
pub mod media;
mod not_stored;
pub mod openapi;
pub mod operator_refusal;
pub mod phone_calls;
pub mod text;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;
use axum::Router;
use tower::ServiceBuilder;

use self::error::ApiError;
use self::load_shed::LoadShed;

use crate::metrics::Metrics;
use crate::state::AppState;

/// The public listener's router and, with `admin.listen` set, the admin listener's, which
/// alone then serves the admin API and /metrics. Both serve the health probes.
pub fn routers(app: AppState) -> (Router, Option<Router>) {
    let settings = &app.settings.http;
    let shed = LoadShed::new(settings);
    let shed = |router: Router<AppState>| {
        router.layer(middleware::from_fn_with_state(
            shed.clone(),
            LoadShed::limit,
        ))
    };
    let public = Router::new()
        .merge(shed(
            Router::new()
                .merge(phone_calls::router(app.metrics.clone()))
                .merge(text::router()),
        ))
        .merge(health::router())
        .merge(openapi::router(openapi::document(&app.settings)))
        .merge(docs::router());
    let admin = Router::new()
        .merge(shed(
            Router::new()
                .merge(bindings::router())
                .merge(integrations::router())
                .merge(dead_letters::router())
                .merge(media::router()),
        ))
        .route(
            "/metrics",
            get(Metrics::render).with_state(app.metrics.clone()),
        );
    if app.settings.admin.listen.is_some() {
        let admin = admin.merge(health::router());
        (serve(public, &app), Some(serve(admin, &app)))
    } else {
        (serve(public.merge(admin), &app), None)
    }
}

/// The layers every request passes, on either listener.
fn serve(routes: Router<AppState>, app: &AppState) -> Router {
    let settings = &app.settings.http;
    routes
        .layer(DefaultBodyLimit::max(settings.body_limit_bytes))
        // A request that overruns (a client trickling its body, say) gets the contract's 503.
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::Unavailable("the request timed out".into())
                }))
                .timeout(settings.request_timeout()),
        )
        .layer(middleware::from_fn_with_state(
            app.metrics.clone(),
            Metrics::time_requests,
        ))
        .layer(access_log::layer())
        .with_state(app.clone())
}
