//! The gateway's HTTP surface, one module per resource.

pub mod access_log;
pub mod auth;
pub mod bindings;
pub mod call_path;
pub mod dead_letters;
pub mod error;
pub mod field_definitions;
pub mod health;
pub mod integrations;
pub mod load_shed;
pub mod media;
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

pub fn router(app: AppState) -> Router {
    let settings = &app.settings.http;
    let api = Router::new()
        .merge(phone_calls::router(app.metrics.clone()))
        .merge(text::router())
        .merge(bindings::router())
        .merge(integrations::router())
        .merge(dead_letters::router())
        .merge(media::router())
        .layer(middleware::from_fn_with_state(
            LoadShed::new(settings),
            LoadShed::limit,
        ));
    Router::new()
        .merge(api)
        .merge(health::router())
        .route(
            "/metrics",
            get(Metrics::render).with_state(app.metrics.clone()),
        )
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
        .with_state(app)
}
