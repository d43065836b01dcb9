//! The gateway's HTTP surface, one module per resource.

pub mod auth;
pub mod bindings;
pub mod error;
pub mod health;
pub mod phone_calls;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;

use self::error::ApiError;

use crate::state::AppState;

pub fn router(app: AppState) -> Router {
    let settings = &app.settings.http;
    Router::new()
        .merge(phone_calls::router())
        .merge(bindings::router())
        .merge(health::router())
        .layer(DefaultBodyLimit::max(settings.body_limit_bytes))
        // A request that overruns (a client trickling its body, say) gets the contract's 503.
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::Unavailable("the request timed out".into())
                }))
                .timeout(settings.request_timeout()),
        )
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}
