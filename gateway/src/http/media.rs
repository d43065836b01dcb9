//! The media admin API, guarded by the admin token: `POST /api/v1/media/reprobe` queues the
//! media probes of stored calls again (or, with `dry_run=true`, counts them). Filters are
//! query parameters: `integration_id`, `status` (pending, reachable, unreachable, refused),
//! `received_after`, `received_before` (RFC 3339, compared with the gateway's receive time).
//! One request queues at most `admin.reprobe_limit` probes, fewer if `limit` says so; when
//! calls are left, `next_after` in the answer, passed back as `after`, continues.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::domain::MediaStatus;
use shared::store::reprobe::{self, Filter, ReprobeError};

use super::auth::Admin;
use super::error::ApiError;
use super::openapi::answers::{AdminErrors, MetaDocument, Unavailable};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/media/reprobe", post(reprobe))
}

#[derive(Debug, Default, Deserialize)]
struct Options {
    limit: Option<u64>,
    #[serde(default)]
    dry_run: bool,
}

/// Query parameters, with a 400 that names the parameter at fault and the accepted ones.
fn query<T>(parsed: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    parsed.map(|Query(q)| q).map_err(|rejection| {
        ApiError::BadRequest(format!(
            "{}; parameters: integration_id, status (one of {}), received_after, \
             received_before (RFC 3339), after (a call id), limit, dry_run",
            rejection.body_text(),
            MediaStatus::ALL.map(MediaStatus::as_str).join(", ")
        ))
    })
}

/// Probe stored calls' recordings again
#[utoipa::path(
    post,
    path = "/api/v1/media/reprobe",
    operation_id = "reprobe_media",
    tag = "admin",
    params(
        ("integration_id" = Option<uuid::Uuid>, Query, description = "Calls of this integration"),
        ("status" = Option<String>, Query, description = "Calls whose media has this status: pending, reachable, unreachable, refused"),
        ("received_after" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Received at or after (RFC 3339)"),
        ("received_before" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Received before (RFC 3339)"),
        ("after" = Option<uuid::Uuid>, Query, description = "The previous answer's meta.next_after"),
        ("limit" = Option<u64>, Query, description = "Queue at most this many (never more than admin.reprobe_limit)"),
        ("dry_run" = Option<bool>, Query, description = "Count, change nothing"),
    ),
    responses(
        (status = 200, description = "Queued (or counted): meta.matched, meta.queued, meta.next_after", body = MetaDocument),
        AdminErrors,
        Unavailable,
    ),
    security(("admin_token" = []))
)]
async fn reprobe(
    State(app): State<AppState>,
    _: Admin,
    filter: Result<Query<Filter>, QueryRejection>,
    options: Result<Query<Options>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (filter, options) = (query(filter)?, query(options)?);
    if options.dry_run {
        let matched = reprobe::count(&app.pool, &filter).await?;
        return Ok(Json(
            json!({"meta": {"dry_run": true, "matched": matched, "queued": 0}}),
        ));
    }
    let bound = app.settings.admin.reprobe_limit;
    // At least one, so that an answer with calls left always carries its next_after.
    let at_most = options.limit.map_or(bound, |limit| limit.min(bound)).max(1);
    let done = reprobe::reprobe(
        &app.pool,
        &app.publisher,
        &app.settings,
        &filter,
        Some(at_most),
        |queued, total| tracing::info!(queued, total, "reprobing media"),
    )
    .await
    .map_err(|e| match e {
        ReprobeError::Database(e) => ApiError::from(e),
        ReprobeError::Declare(e) => ApiError::Unavailable(e.to_string()),
        ReprobeError::Publish(e) => ApiError::Unavailable(e.to_string()),
    })?;
    tracing::info!(?filter, queued = done.queued, "media reprobe queued");
    Ok(Json(json!({"meta": {
        "dry_run": false,
        "matched": done.matched,
        "queued": done.queued,
        "next_after": done.next_after,
    }})))
}
