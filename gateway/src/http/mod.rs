//! The gateway's HTTP surface, one module per resource.

pub mod auth;
pub mod bindings;
pub mod error;
pub mod health;
pub mod phone_calls;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

pub fn router(app: AppState) -> Router {
    let settings = &app.settings.http;
    Router::new()
        .merge(phone_calls::router())
        .merge(bindings::router())
        .merge(health::router())
        .layer(DefaultBodyLimit::max(settings.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            settings.request_timeout(),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}
