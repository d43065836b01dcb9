//! `POST /api/v1/integrations/{integration_id}/text` takes a chat, ticket or email with its
//! parts; `GET .../text/{uid}` shows what became of it. Taken like a call (token, every bad
//! field in one 422, 2xx only once the broker confirmed) and queued with the calls.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use shared::contract::{parse_text, Body};
use shared::text_message::TextMessage;
use uuid::Uuid;

use super::auth::Integration;
use super::call_path::CallUid;
use super::error::ApiError;
use super::field_definitions::accept;
use super::not_stored;
use super::openapi::answers::{ErrorDocument, TextDocument, Unavailable};
use super::openapi::text_schema::TextCommunication;
use super::operator_refusal::refuse_unknown_operator;
use super::phone_calls::{accepted, read_json, Queued};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/integrations/{integration_id}/text", post(create))
        .route(
            "/api/v1/integrations/{integration_id}/text/{uid}",
            get(show),
        )
}

/// Take a chat, ticket or email
///
/// Taken as a call is: answers once the broker has confirmed the communication is queued, 202
/// or 200 as the integration is set; a worker then stores it, its parts upserted by
/// `communication_part_id`, so a chat can be posted again as it grows. `GET .../text/{uid}`
/// shows what became of it.
#[utoipa::path(
    post,
    path = "/api/v1/integrations/{integration_id}/text",
    operation_id = "create_text",
    tag = "texts",
    params(("integration_id" = Uuid, Path, description = "The integration, as in its URL")),
    request_body(content = TextCommunication, content_type = "application/json"),
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = 200, description = "Queued (an integration set to answer 200)", body = Queued),
        (status = 401, description = "No token, or not this integration's", body = ErrorDocument, content_type = "application/vnd.api+json"),
        (status = 404, description = "No such integration", body = ErrorDocument, content_type = "application/vnd.api+json"),
        (status = 413, description = "The body is over `http.body_limit_bytes`", body = ErrorDocument, content_type = "application/vnd.api+json"),
        (status = 415, description = "Not JSON: another Content-Type, or a body that does not parse", body = ErrorDocument, content_type = "application/vnd.api+json"),
        (status = 422, description = "Not a valid communication: one error object per field at fault, with its pointer. \
            A Qolio-compatible integration also refuses an unknown or inactive operator so, under operator_id, \
            with the real API's words («Необходимо, чтобы был определен активный оператор»), queueing nothing: \
            import the operator's binding and post again", body = ErrorDocument, content_type = "application/vnd.api+json"),
        (status = 429, description = "Over the integration's rate (`http.rate_limit_per_sec`)", body = ErrorDocument, content_type = "application/vnd.api+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        Unavailable,
    ),
    security(("integration_token" = []))
)]
#[tracing::instrument(skip_all, fields(integration = %integration.0.id, uid, ingest_id))]
async fn create(
    State(app): State<AppState>,
    integration: Integration,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let integration = integration.0;
    if let Some(limiter) = &app.rate_limiter {
        limiter
            .check(integration.id)
            .map_err(|wait| ApiError::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil() as u64,
            })?;
    }
    let bytes = read_json(&headers, body, app.settings.http.body_limit_bytes)?;
    let body = Body::parse(&bytes).map_err(|e| {
        ApiError::UnsupportedMediaType(format!(
            "the body is not valid JSON ({e}); send the communication as a JSON object"
        ))
    })?;
    let limits = &app.settings.limits;
    let (text, unregistered) = accept(&app, integration.organisation_id, |defs| {
        parse_text(&body, defs, limits).map(|p| (p.text, p.new_fields))
    })
    .await?;
    // A text's message carries no keys for the worker to register (calls' version 2 does):
    // texts are few, and their clients retry a 503.
    if !unregistered.is_empty() {
        return Err(ApiError::Unavailable(
            "the database is away and the communication brings custom field keys this \
             organisation has never had; post it again shortly"
                .into(),
        ));
    }
    refuse_unknown_operator(&app, &integration, text.operator_id.as_str()).await?;
    let key = text.storage_key();
    tracing::Span::current().record("uid", key.uid.as_str());

    let (ingest_id, received_at) = (Uuid::now_v7(), Utc::now());
    let message = TextMessage::new(
        ingest_id,
        integration.id,
        integration.organisation_id,
        received_at,
        text,
    );
    let span = tracing::Span::current();
    span.record("ingest_id", tracing::field::display(ingest_id));
    app.calls
        .publish(
            message.to_bytes(),
            shared::trace_context::traceparent(&span),
        )
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    app.metrics.texts_published.inc();

    Ok(accepted(
        &app,
        &integration,
        &key,
        ingest_id,
        received_at,
        "text_communications",
    ))
}

#[derive(sqlx::FromRow)]
struct StoredText {
    id: Uuid,
    uid: String,
    uid_derived: bool,
    operator_id: String,
    communication_type: String,
    client_id: Option<String>,
    title: Option<String>,
    source: Option<String>,
    status: Option<String>,
    direction: Option<String>,
    nps: Option<f64>,
    client_feedback: Option<String>,
    email: Option<String>,
    started_at: Option<DateTime<Utc>>,
    custom_fields: Value,
    received_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    user_id: Uuid,
    user_email: String,
    first_name: String,
    last_name: String,
    department_id: Option<Uuid>,
    department_name: Option<String>,
}

#[derive(sqlx::FromRow)]
struct StoredPart {
    part_id: String,
    author_type: String,
    author_id: Option<String>,
    body: String,
    created_at: DateTime<Utc>,
    content_type: Option<String>,
}

/// What became of a chat, ticket or email
///
/// Stored (with its fields and its parts), dead-lettered (with the reason and how to replay
/// it), or still queued.
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{integration_id}/text/{uid}",
    operation_id = "show_text",
    tag = "texts",
    params(
        ("integration_id" = Uuid, Path, description = "The integration, as in its URL"),
        ("uid" = String, Path, description = "The communication's uid, as sent or as answered"),
    ),
    responses(
        (status = 200, description = "The communication", body = TextDocument),
        (status = 401, description = "No token, or not this integration's", body = ErrorDocument, content_type = "application/vnd.api+json"),
        (status = 404, description = "No such integration, or no such communication in it", body = ErrorDocument, content_type = "application/vnd.api+json"),
        Unavailable,
    ),
    security(("integration_token" = []))
)]
// The uid is parsed before the integration is authenticated, as for calls.
async fn show(
    State(app): State<AppState>,
    CallUid(uid): CallUid,
    integration: Integration,
) -> Result<Response, ApiError> {
    let integration_id = integration.0.id;
    let uid = uid.as_str();
    let stored: Option<StoredText> = sqlx::query_as(
        "SELECT t.id, t.uid, t.uid_derived, t.operator_id, t.communication_type, t.client_id,
                t.title, t.source, t.status, t.direction, t.nps, t.client_feedback, t.email,
                t.started_at, t.custom_fields, t.received_at, t.updated_at, t.user_id,
                u.email AS user_email, u.first_name, u.last_name, t.department_id,
                d.name AS department_name
         FROM text_communications t
         JOIN users u ON u.id = t.user_id
         LEFT JOIN departments d ON d.id = t.department_id
         WHERE t.integration_id = $1 AND t.uid = $2",
    )
    .bind(integration_id)
    .bind(uid)
    .fetch_optional(&app.pool)
    .await?;
    if let Some(text) = stored {
        let parts: Vec<StoredPart> = sqlx::query_as(
            "SELECT part_id, author_type, author_id, body, created_at, content_type
             FROM text_parts WHERE communication_id = $1 ORDER BY created_at, position, part_id",
        )
        .bind(text.id)
        .fetch_all(&app.pool)
        .await?;
        return Ok(Json(stored_document(text, parts)).into_response());
    }

    not_stored::answer(
        &app,
        integration_id,
        uid,
        "text_communications",
        format!(
            "no text communication with uid {uid:?} in this integration (an accepted one is \
             found here once a worker has stored it, usually within a second)"
        ),
    )
    .await
}

fn stored_document(t: StoredText, parts: Vec<StoredPart>) -> Value {
    let mut included = vec![json!({"type": "users", "id": t.user_id,
        "attributes": {"email": t.user_email, "first_name": t.first_name, "last_name": t.last_name}})];
    if let Some(id) = t.department_id {
        included.push(
            json!({"type": "departments", "id": id, "attributes": {"name": t.department_name}}),
        );
    }
    let parts: Vec<Value> = parts
        .into_iter()
        .map(|p| {
            json!({
                "communication_part_id": p.part_id,
                "author": {"type": p.author_type, "id": p.author_id},
                "body": p.body,
                "created_at": p.created_at,
                "content_type": p.content_type,
            })
        })
        .collect();
    json!({
        "data": {
            "type": "text_communications",
            "id": t.uid,
            "attributes": {
                "status": "stored",
                "uid": t.uid,
                "uid_derived": t.uid_derived,
                "operator_id": t.operator_id,
                "department": t.department_name,
                "communication_type": t.communication_type,
                "client_id": t.client_id,
                "title": t.title,
                "source": t.source,
                "communication_status": t.status,
                "direction": t.direction,
                "nps": t.nps,
                "client_feedback": t.client_feedback,
                "email": t.email,
                "started_at": t.started_at,
                "custom_fields": t.custom_fields,
                "communication_parts": parts,
                "received_at": t.received_at,
                "updated_at": t.updated_at,
            },
            "relationships": {
                "operator": {"data": {"type": "users", "id": t.user_id}},
                "department": {"data": t.department_id.map(|id| json!({"type": "departments", "id": id}))},
            },
        },
        "included": included,
    })
}
