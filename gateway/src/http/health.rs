//! Liveness (the process answers) and readiness (it could queue a call right now).
//!
//! Readiness asks the broker only. Postgres being away does not stop a gateway from queueing
//! calls of the integrations it has loaded (see `cache.rs`), so it must not take every gateway
//! out of its Service at once; a call it cannot authenticate is answered 503 on its own.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::openapi::answers::{Health, Readiness};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// Liveness: the process answers
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: a call could be queued now (the broker confirms)
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "The broker is away", body = Readiness),
    ))]
async fn readyz(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let broker = app.publisher.ready().await;
    let status = if broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({"broker": broker})))
}
