//! `POST /api/v1/integrations/{integration_id}/phone_calls` takes a call; `GET .../{uid}`
//! shows what became of it.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use shared::contract::Body;
use shared::domain::CallKey;
use shared::message::{CallEnvelope, CallMessage};
use shared::store::accounts::IntegrationAuth;
use uuid::Uuid;

use super::auth::Integration;
use super::call_path::CallUid;
use super::error::ApiError;
use super::field_definitions::{parse_with_definitions, Accepted};
use super::not_stored;
use super::openapi::answers::{CallDocument, ErrorDocument, Unavailable};
use super::openapi::call_schema::PhoneCall;
use super::operator_refusal::refuse_unknown_operator;
use crate::metrics::Metrics;
use crate::queued::QueuedNote;
use crate::state::AppState;

pub fn router(metrics: Metrics) -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/integrations/{integration_id}/phone_calls",
            post(create).route_layer(middleware::from_fn_with_state(
                metrics,
                Metrics::count_answers,
            )),
        )
        .route(
            "/api/v1/integrations/{integration_id}/phone_calls/{uid}",
            get(show),
        )
}

/// Take a call
///
/// Answers once the broker has confirmed the call is queued: 202, or 200 for an integration
/// made for clients written against the real API. A worker then stores it (or dead-letters it,
/// with the reason: an unknown operator, say); `GET .../phone_calls/{uid}` shows which.
#[utoipa::path(
    post,
    path = "/api/v1/integrations/{integration_id}/phone_calls",
    operation_id = "create_phone_call",
    tag = "calls",
    params(("integration_id" = Uuid, Path, description = "The integration, as in its URL")),
    request_body(content = PhoneCall, content_type = "application/json"),
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = 200, description = "Queued (an integration set to answer 200)", body = Queued),
        (status = 401, description = "No token, or not this integration's", body = ErrorDocument, content_type = "application/vnd.api+json"),
        (status = 404, description = "No such integration", body = ErrorDocument, content_type = "application/vnd.api+json"),
        (status = 413, description = "The body is over `http.body_limit_bytes`", body = ErrorDocument, content_type = "application/vnd.api+json"),
        (status = 415, description = "Not JSON: another Content-Type, or a body that does not parse", body = ErrorDocument, content_type = "application/vnd.api+json"),
        (status = 422, description = "Not a valid call: one error object per field at fault, with its pointer. \
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
            "the body is not valid JSON ({e}); send the call as a JSON object"
        ))
    })?;
    let Accepted { call, unregistered } =
        parse_with_definitions(&app, integration.organisation_id, &body).await?;
    refuse_unknown_operator(&app, &integration, call.operator_id.as_str()).await?;
    let key = call.storage_key();
    tracing::Span::current().record("uid", key.uid.as_str());

    let envelope = CallEnvelope {
        ingest_id: Uuid::now_v7(),
        integration_id: integration.id,
        organisation_id: integration.organisation_id,
        received_at: Utc::now(),
        call,
    };
    let (ingest_id, received_at) = (envelope.ingest_id, envelope.received_at);
    let span = tracing::Span::current();
    span.record("ingest_id", tracing::field::display(ingest_id));
    app.calls
        .publish(
            CallMessage::new(envelope, unregistered).to_bytes(),
            shared::trace_context::traceparent(&span),
        )
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    app.metrics.published.inc();

    Ok(accepted(
        &app,
        &integration,
        &key,
        ingest_id,
        received_at,
        "phone_calls",
    ))
}

/// Notes an accepted call or text as queued (with `http.queued_notes`) and answers it with
/// the integration's success status.
pub(super) fn accepted(
    app: &AppState,
    integration: &IntegrationAuth,
    key: &CallKey,
    ingest_id: Uuid,
    received_at: DateTime<Utc>,
    kind: &'static str,
) -> Response {
    if let Some(queued) = &app.queued {
        queued.note(QueuedNote {
            ingest_id,
            integration_id: integration.id,
            uid: key.uid.clone(),
            received_at,
        });
    }
    let status =
        StatusCode::from_u16(integration.success_status as u16).unwrap_or(StatusCode::ACCEPTED);
    let document = Queued {
        data: QueuedCall {
            kind,
            id: &key.uid,
            attributes: QueuedAttributes {
                status: "queued",
                uid_derived: key.derived,
                ingest_id,
                received_at,
            },
        },
    };
    (status, Json(document)).into_response()
}

/// The answer to an accepted call or text, serialized directly rather than built as a `Value`
/// first, which allocated a map per level and a string per key for every call.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Queued<'a> {
    pub data: QueuedCall<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct QueuedCall<'a> {
    /// `phone_calls`, or `text_communications` for a text.
    #[serde(rename = "type")]
    #[schema(example = "phone_calls")]
    pub kind: &'static str,
    /// The uid: the one sent, or one derived from the fields when none was.
    pub id: &'a str,
    pub attributes: QueuedAttributes,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct QueuedAttributes {
    #[schema(example = "queued")]
    pub status: &'static str,
    /// No uid was sent: the id is derived from the fields.
    pub uid_derived: bool,
    pub ingest_id: Uuid,
    #[serde(with = "shared::domain::wire_time")]
    pub received_at: DateTime<Utc>,
}

/// The body of what says it is JSON: 415 for other types, 413 over the limit (axum's body
/// limit reports it here).
pub(super) fn read_json(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let content_type = content_type
            .to_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type must be application/json, not {essence:?}"
            )));
        }
    }
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit },
        _ => ApiError::UnsupportedMediaType(format!("the body could not be read: {rejection}")),
    })
}

#[derive(sqlx::FromRow)]
struct StoredCall {
    uid: String,
    uid_derived: bool,
    operator_id: String,
    started_at: DateTime<Utc>,
    direction: Option<String>,
    duration: Option<f64>,
    client_phone_number: Option<String>,
    phone_call_chain_uid: Option<String>,
    nps: Option<f64>,
    media_url: String,
    custom_fields: Value,
    transcription: Option<Value>,
    client: Option<Value>,
    media_status: String,
    media_probe_attempts: i32,
    media_next_probe_at: Option<DateTime<Utc>>,
    media_http_status: Option<i32>,
    media_content_type: Option<String>,
    media_content_length: Option<i64>,
    media_insecure: bool,
    media_error: Option<String>,
    media_checked_at: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    user_id: Uuid,
    email: String,
    first_name: String,
    last_name: String,
    department_id: Option<Uuid>,
    department_name: Option<String>,
    client_id: Option<Uuid>,
}

/// What became of a call
///
/// Stored (with its fields and the probe of its recording), dead-lettered (with the reason and
/// how to replay it), or still queued.
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{integration_id}/phone_calls/{uid}",
    operation_id = "show_phone_call",
    tag = "calls",
    params(
        ("integration_id" = Uuid, Path, description = "The integration, as in its URL"),
        ("uid" = String, Path, description = "The call's uid, as sent or as answered"),
    ),
    responses(
        (status = 200, description = "The call", body = CallDocument),
        (status = 401, description = "No token, or not this integration's", body = ErrorDocument, content_type = "application/vnd.api+json"),
        (status = 404, description = "No such integration, or no such call in it", body = ErrorDocument, content_type = "application/vnd.api+json"),
        Unavailable,
    ),
    security(("integration_token" = []))
)]
// The uid is parsed before the integration is authenticated, so that a path naming no
// possible call costs no lookup at all.
async fn show(
    State(app): State<AppState>,
    CallUid(uid): CallUid,
    integration: Integration,
) -> Result<Response, ApiError> {
    let integration_id = integration.0.id;
    let uid = uid.as_str();
    let stored: Option<StoredCall> = sqlx::query_as(
        "SELECT c.uid, c.uid_derived, c.operator_id, c.started_at, c.direction, c.duration,
                c.client_phone_number, c.phone_call_chain_uid, c.nps, c.media_url, c.custom_fields,
                c.transcription, c.client, c.media_status, c.media_probe_attempts,
                c.media_next_probe_at, c.media_http_status, c.media_content_type,
                c.media_content_length, c.media_insecure, c.media_error, c.media_checked_at,
                c.received_at, c.updated_at, c.user_id, u.email, u.first_name, u.last_name,
                c.department_id, d.name AS department_name, c.client_id
         FROM call_keys k
         JOIN calls c ON c.id = k.call_id AND c.created_at = k.created_at
         JOIN users u ON u.id = c.user_id
         LEFT JOIN departments d ON d.id = c.department_id
         WHERE k.integration_id = $1 AND k.uid = $2",
    )
    .bind(integration_id)
    .bind(uid)
    .fetch_optional(&app.pool)
    .await?;
    if let Some(call) = stored {
        return Ok(Json(stored_document(call)).into_response());
    }

    not_stored::answer(
        &app,
        integration_id,
        uid,
        "phone_calls",
        format!(
            "no call with uid {uid:?} in this integration (an accepted call is found here once \
             a worker has stored it, usually within a second)"
        ),
    )
    .await
}

fn stored_document(c: StoredCall) -> Value {
    let mut included = vec![json!({"type": "users", "id": c.user_id,
        "attributes": {"email": c.email, "first_name": c.first_name, "last_name": c.last_name}})];
    if let Some(id) = c.department_id {
        included.push(
            json!({"type": "departments", "id": id, "attributes": {"name": c.department_name}}),
        );
    }
    if let Some(id) = c.client_id {
        included.push(json!({"type": "clients", "id": id, "attributes": c.client}));
    }
    json!({
        "data": {
            "type": "phone_calls",
            "id": c.uid,
            "attributes": {
                "status": "stored",
                "uid": c.uid,
                "uid_derived": c.uid_derived,
                "operator_id": c.operator_id,
                "department": c.department_name,
                "started_at": c.started_at,
                "direction": c.direction,
                "duration": c.duration,
                "client_phone_number": c.client_phone_number,
                "phone_call_chain_uid": c.phone_call_chain_uid,
                "nps": c.nps,
                "media_url": c.media_url,
                "client": c.client,
                "custom_fields": c.custom_fields,
                "transcription": c.transcription,
                "media": {
                    "status": c.media_status,
                    "reachable": c.media_status == "reachable",
                    "http_status": c.media_http_status,
                    "content_type": c.media_content_type,
                    "content_length": c.media_content_length,
                    "insecure": c.media_insecure,
                    "error": c.media_error,
                    "checked_at": c.media_checked_at,
                    "probe_attempts": c.media_probe_attempts,
                    "next_probe_at": c.media_next_probe_at,
                },
                "received_at": c.received_at,
                "updated_at": c.updated_at,
            },
            "relationships": {
                "operator": {"data": {"type": "users", "id": c.user_id}},
                "department": {"data": c.department_id.map(|id| json!({"type": "departments", "id": id}))},
                "client": {"data": c.client_id.map(|id| json!({"type": "clients", "id": id}))},
            },
        },
        "included": included,
    })
}
