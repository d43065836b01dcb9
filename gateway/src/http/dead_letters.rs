//! The dead-letter admin API, guarded by the admin token: list and count, show one whole,
//! replay (or a dry run of it), purge. Filters are query parameters, the same for each:
//! `id`, `reason`, `integration_id`, `operator_id`, `uid`, `failed_after`, `failed_before`
//! (RFC 3339, compared with the last failure).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use shared::store::dead_letters::{self, Filter, ReplayError, Selection, Summary};
use uuid::Uuid;

use super::auth::Admin;
use super::error::ApiError;
use super::openapi::answers::{
    AdminErrors, DeadLetterDocument, DeadLetterList, ErrorDocument, MetaDocument, Unavailable,
};
use crate::state::AppState;

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;
/// Replayed per request unless `limit` says otherwise; a bigger backlog takes more requests
/// (each answer says what remains) or the CLI, which shows progress.
const DEFAULT_REPLAY_LIMIT: u64 = 10_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/dead_letters", get(list).delete(purge))
        .route("/api/v1/dead_letters/replay", post(replay))
        .route("/api/v1/dead_letters/{id}", get(show))
}

#[derive(Debug, Default, Deserialize)]
struct Options {
    limit: Option<i64>,
    before: Option<Uuid>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    all: bool,
}

/// Query parameters, with a 400 that names the parameter at fault.
fn query<T>(parsed: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    parsed.map(|Query(q)| q).map_err(|rejection| {
        ApiError::BadRequest(format!(
            "{}; filters: id, reason (one of {}), integration_id, operator_id, uid, \
             failed_after, failed_before (RFC 3339)",
            rejection.body_text(),
            dead_letters::Reason::ALL.map(|r| r.as_str()).join(", ")
        ))
    })
}

/// List dead letters
///
/// Newest first, with their count by reason; `before` pages on.
#[utoipa::path(
    get,
    path = "/api/v1/dead_letters",
    operation_id = "list_dead_letters",
    tag = "admin",
    params(
        ("id" = Option<Uuid>, Query, description = "One dead letter"),
        ("reason" = Option<String>, Query, description = "The reason it was set aside", example = "operator_not_found"),
        ("integration_id" = Option<Uuid>, Query, description = "The integration of its call"),
        ("operator_id" = Option<String>, Query, description = "The operator_id of its call"),
        ("uid" = Option<String>, Query, description = "The uid of its call"),
        ("failed_after" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Last failed at or after (RFC 3339)"),
        ("failed_before" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Last failed before (RFC 3339)"),
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 1000 (100 unless given)"),
        ("before" = Option<Uuid>, Query, description = "The previous page's meta.next_before"),
    ),
    responses(
        (status = 200, description = "A page of dead letters", body = DeadLetterList),
        AdminErrors,
        Unavailable,
    ),
    security(("admin_token" = []))
)]
async fn list(
    State(app): State<AppState>,
    _: Admin,
    filter: Result<Query<Filter>, QueryRejection>,
    options: Result<Query<Options>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (filter, options) = (query(filter)?, query(options)?);
    let limit = options.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let counts = dead_letters::counts(&app.pool, &filter).await?;
    let page = dead_letters::list(&app.pool, &filter, limit, options.before).await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let next = (page.len() as i64 == limit)
        .then(|| page.last().map(|last| last.id))
        .flatten();
    Ok(Json(json!({
        "data": page.into_iter().map(resource).collect::<Vec<_>>(),
        "meta": {
            "total": total,
            "counts_by_reason": counts.into_iter().map(|(r, n)| (r, Value::from(n))).collect::<Map<_, _>>(),
            "next_before": next,
        },
    })))
}

/// Show a dead letter whole, with its message as it was set aside
#[utoipa::path(
    get,
    path = "/api/v1/dead_letters/{id}",
    operation_id = "show_dead_letter",
    tag = "admin",
    params(("id" = Uuid, Path, description = "The dead letter")),
    responses(
        (status = 200, description = "The dead letter", body = DeadLetterDocument),
        (status = 404, description = "No such dead letter", body = ErrorDocument, content_type = "application/vnd.api+json"),
        AdminErrors,
        Unavailable,
    ),
    security(("admin_token" = []))
)]
async fn show(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::NotFound(format!("no dead letter {id:?} (ids are UUIDs)")))?;
    let letter = dead_letters::get(&app.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {id}")))?;
    let mut document = resource(letter.summary);
    document["attributes"]["message"] = letter.message;
    document["attributes"]["message_encoding"] = letter.message_encoding.into();
    Ok(Json(json!({ "data": document })))
}

/// Replay dead letters
///
/// Publishes the matching dead letters' calls again (at most `limit`, 10000 unless given) and
/// removes them; `dry_run=true` only counts them.
#[utoipa::path(
    post,
    path = "/api/v1/dead_letters/replay",
    operation_id = "replay_dead_letters",
    tag = "admin",
    params(
        ("id" = Option<Uuid>, Query, description = "One dead letter"),
        ("reason" = Option<String>, Query, description = "The reason it was set aside", example = "operator_not_found"),
        ("integration_id" = Option<Uuid>, Query, description = "The integration of its call"),
        ("operator_id" = Option<String>, Query, description = "The operator_id of its call"),
        ("uid" = Option<String>, Query, description = "The uid of its call"),
        ("failed_after" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Last failed at or after (RFC 3339)"),
        ("failed_before" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Last failed before (RFC 3339)"),
        ("limit" = Option<i64>, Query, description = "Replay at most this many"),
        ("dry_run" = Option<bool>, Query, description = "Count, change nothing"),
    ),
    responses(
        (status = 200, description = "Replayed (or counted): meta.replayed, meta.remaining or meta.would_replay", body = MetaDocument),
        AdminErrors,
        Unavailable,
    ),
    security(("admin_token" = []))
)]
async fn replay(
    State(app): State<AppState>,
    _: Admin,
    filter: Result<Query<Filter>, QueryRejection>,
    options: Result<Query<Options>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (filter, options) = (query(filter)?, query(options)?);
    let selection = Selection::Matching(&filter);
    if options.dry_run {
        let matched = dead_letters::count(&app.pool, selection).await?;
        return Ok(Json(
            json!({"meta": {"dry_run": true, "would_replay": matched}}),
        ));
    }
    let at_most = options
        .limit
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(DEFAULT_REPLAY_LIMIT);
    let replayed = dead_letters::replay(
        &app.pool,
        &app.publisher,
        selection,
        app.settings.worker.replay_batch.max(1),
        Some(at_most),
        |n| tracing::info!(replayed = n, "replaying dead letters"),
    )
    .await
    .map_err(|e| match e {
        ReplayError::Database(e) => ApiError::from(e),
        ReplayError::Publish(e) => ApiError::Unavailable(e.to_string()),
    })?;
    app.metrics.replayed.inc_by(replayed);
    let remaining = dead_letters::count(&app.pool, selection).await?;
    Ok(Json(
        json!({"meta": {"dry_run": false, "replayed": replayed, "remaining": remaining}}),
    ))
}

/// Purge dead letters for good
///
/// Needs a filter, or `all=true`; `dry_run=true` only counts them.
#[utoipa::path(
    delete,
    path = "/api/v1/dead_letters",
    operation_id = "purge_dead_letters",
    tag = "admin",
    params(
        ("id" = Option<Uuid>, Query, description = "One dead letter"),
        ("reason" = Option<String>, Query, description = "The reason it was set aside", example = "operator_not_found"),
        ("integration_id" = Option<Uuid>, Query, description = "The integration of its call"),
        ("operator_id" = Option<String>, Query, description = "The operator_id of its call"),
        ("uid" = Option<String>, Query, description = "The uid of its call"),
        ("failed_after" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Last failed at or after (RFC 3339)"),
        ("failed_before" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Last failed before (RFC 3339)"),
        ("all" = Option<bool>, Query, description = "Purge every dead letter (no filter)"),
        ("dry_run" = Option<bool>, Query, description = "Count, change nothing"),
    ),
    responses(
        (status = 200, description = "Purged (or counted): meta.purged or meta.would_purge", body = MetaDocument),
        AdminErrors,
        Unavailable,
    ),
    security(("admin_token" = []))
)]
async fn purge(
    State(app): State<AppState>,
    _: Admin,
    filter: Result<Query<Filter>, QueryRejection>,
    options: Result<Query<Options>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (filter, options) = (query(filter)?, query(options)?);
    if filter.is_empty() && !options.all {
        return Err(ApiError::BadRequest(
            "purging deletes dead letters for good: pass a filter (reason, integration_id, ...) \
             or all=true to purge every one"
                .into(),
        ));
    }
    if options.dry_run {
        let matched = dead_letters::count(&app.pool, Selection::Matching(&filter)).await?;
        return Ok(Json(
            json!({"meta": {"dry_run": true, "would_purge": matched}}),
        ));
    }
    let purged = dead_letters::purge(&app.pool, &filter).await?;
    tracing::warn!(purged, ?filter, "dead letters purged");
    Ok(Json(json!({"meta": {"dry_run": false, "purged": purged}})))
}

fn resource(summary: Summary) -> Value {
    let id = summary.id;
    let mut attributes = serde_json::to_value(summary).unwrap_or_default();
    if let Some(map) = attributes.as_object_mut() {
        map.remove("id");
    }
    json!({"type": "dead_letters", "id": id, "attributes": attributes})
}
