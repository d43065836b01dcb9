//! What `GET` answers for a call or text with no stored row yet: its latest dead letter, else
//! the note that it is queued, else 404. Calls and texts share the dead letters and the notes.

use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::json;
use shared::store::dead_letters::{self, Reason};
use uuid::Uuid;

use super::error::ApiError;
use crate::state::AppState;

/// `resource` is the JSON:API type (`phone_calls`, `text_communications`); `not_found` is the
/// 404's message.
pub(super) async fn answer(
    app: &AppState,
    integration_id: Uuid,
    uid: &str,
    resource: &'static str,
    not_found: String,
) -> Result<Response, ApiError> {
    if let Some(dead) = dead_letters::latest_for_call(&app.pool, integration_id, uid).await? {
        let replay = dead
            .reason
            .parse::<Reason>()
            .map(Reason::replay_hint)
            .unwrap_or("can be replayed once the cause is fixed");
        return Ok(Json(json!({"data": {
            "type": resource,
            "id": uid,
            "attributes": {
                "status": "dead_lettered",
                "reason": dead.reason,
                "detail": dead.detail,
                "attempts": dead.attempts,
                "first_failed_at": dead.first_failed_at,
                "last_failed_at": dead.last_failed_at,
                "dead_letter_id": dead.id,
                "replay": replay,
            },
        }}))
        .into_response());
    }

    let queued: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT max(received_at) FROM queued_calls WHERE integration_id = $1 AND uid = $2",
    )
    .bind(integration_id)
    .bind(uid)
    .fetch_one(&app.pool)
    .await?;
    match queued {
        Some(received_at) => Ok(Json(json!({"data": {
            "type": resource,
            "id": uid,
            "attributes": {"status": "queued", "received_at": received_at},
        }}))
        .into_response()),
        None => Err(ApiError::NotFound(not_found)),
    }
}
