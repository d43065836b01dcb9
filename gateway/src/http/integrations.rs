//! The integration admin API, guarded by the admin token: list integrations (optionally one
//! organisation's, `organisation_id`), show one, and change its settings with PATCH
//! (`{"data": {"attributes": {"success_status": 200, "name": "...", "qolio_compatible": true}}}`,
//! any of them), so that operators without database access can switch an integration to answer
//! 200 or to refuse unknown operators as the real API does.
//!
//! A change takes effect on this gateway at once (its cache entry is dropped) and on the
//! others within `auth.cache_ttl_secs`, when their cached entry is refreshed.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::domain::text::MAX_ID_LEN;
use shared::domain::NUL_REFUSAL;
use shared::store::accounts::AccountError;
use shared::store::integrations::{self, Changes, IntegrationInfo, SuccessStatus};
use uuid::Uuid;

use super::auth::Admin;
use super::error::ApiError;
use super::openapi::answers::{
    AdminErrors, ErrorDocument, IntegrationDocument, IntegrationList, IntegrationPatch, Unavailable,
};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/api_integrations", get(list))
        .route(
            "/api/v1/api_integrations/{integration_id}",
            get(show).patch(update),
        )
}

#[derive(Deserialize)]
struct ListFilter {
    organisation_id: Option<Uuid>,
}

/// List integrations
#[utoipa::path(
    get,
    path = "/api/v1/api_integrations",
    operation_id = "list_integrations",
    tag = "admin",
    params(("organisation_id" = Option<Uuid>, Query, description = "Only this organisation's")),
    responses(
        (status = 200, description = "The integrations", body = IntegrationList),
        AdminErrors,
        Unavailable,
    ),
    security(("admin_token" = []))
)]
async fn list(
    State(app): State<AppState>,
    _: Admin,
    filter: Result<Query<ListFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(filter) = filter.map_err(|rejection| {
        ApiError::BadRequest(format!(
            "{}; filter: organisation_id (a UUID)",
            rejection.body_text()
        ))
    })?;
    let all = integrations::list(&app.pool, filter.organisation_id).await?;
    let base = &app.settings.http.public_base_url;
    Ok(Json(json!({
        "data": all.iter().map(|i| resource(i, base)).collect::<Vec<_>>(),
        "meta": {"total": all.len()},
    })))
}

/// Show an integration
#[utoipa::path(
    get,
    path = "/api/v1/api_integrations/{integration_id}",
    operation_id = "show_integration",
    tag = "admin",
    params(("integration_id" = Uuid, Path, description = "The integration")),
    responses(
        (status = 200, description = "The integration", body = IntegrationDocument),
        (status = 404, description = "No such integration", body = ErrorDocument, content_type = "application/vnd.api+json"),
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
    let id = integration_id(&id)?;
    let found = integrations::get(&app.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no integration {id}")))?;
    Ok(Json(
        json!({"data": resource(&found, &app.settings.http.public_base_url)}),
    ))
}

/// Change an integration's name, success status or Qolio compatibility
#[utoipa::path(
    patch,
    path = "/api/v1/api_integrations/{integration_id}",
    operation_id = "update_integration",
    tag = "admin",
    params(("integration_id" = Uuid, Path, description = "The integration")),
    request_body(content = IntegrationPatch, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed", body = IntegrationDocument),
        (status = 404, description = "No such integration", body = ErrorDocument, content_type = "application/vnd.api+json"),
        (status = 422, description = "An attribute at fault, with its pointer", body = ErrorDocument, content_type = "application/vnd.api+json"),
        AdminErrors,
        Unavailable,
    ),
    security(("admin_token" = []))
)]
async fn update(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = integration_id(&id)?;
    let changes = parse_changes(&body)?;
    let updated = integrations::update(&app.pool, id, &changes)
        .await
        .map_err(|e| match e {
            AccountError::UnknownIntegration(id) => {
                ApiError::NotFound(format!("no integration {id}"))
            }
            AccountError::NameTaken(name) => invalid(
                "name",
                format!("{name:?} is already another of the organisation's integrations"),
            ),
            AccountError::Database(e) => e.into(),
            other => ApiError::Internal(other.into()),
        })?;
    app.integrations.invalidate(&id).await;
    tracing::info!(%id, ?changes, "integration settings changed");
    Ok(Json(json!({
        "data": resource(&updated, &app.settings.http.public_base_url),
        "meta": {"other_gateways_within_secs": app.settings.auth.cache_ttl_secs},
    })))
}

/// Anything that is not a UUID names no integration.
fn integration_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("no such integration".into()))
}

#[derive(Deserialize)]
struct PatchBody {
    data: PatchData,
}

#[derive(Deserialize)]
struct PatchData {
    attributes: PatchAttributes,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchAttributes {
    name: Option<String>,
    success_status: Option<u16>,
    qolio_compatible: Option<bool>,
}

pub(super) fn parse_changes(body: &[u8]) -> Result<Changes, ApiError> {
    let body: PatchBody = serde_json::from_slice(body).map_err(|e| {
        invalid(
            "",
            format!(
                "must be {{\"data\": {{\"attributes\": {{\"success_status\"?: 200 or 202, \"name\"?: string, \"qolio_compatible\"?: boolean}}}}}} ({e})"
            ),
        )
    })?;
    let attributes = body.data.attributes;
    let success_status = attributes
        .success_status
        .map(SuccessStatus::try_from)
        .transpose()
        .map_err(|_| invalid("success_status", "must be 200 or 202".into()))?;
    let name = match attributes.name.map(|n| n.trim().to_owned()) {
        Some(n) if n.is_empty() => return Err(invalid("name", "must not be empty".into())),
        // Postgres stores no NUL, and indexes the name (unique in the organisation).
        Some(n) if n.contains('\0') => return Err(invalid("name", NUL_REFUSAL.into())),
        Some(n) if n.chars().count() > MAX_ID_LEN => {
            return Err(invalid(
                "name",
                format!("must be at most {MAX_ID_LEN} characters"),
            ))
        }
        other => other,
    };
    let changes = Changes {
        name,
        success_status,
        qolio_compatible: attributes.qolio_compatible,
    };
    if changes.is_empty() {
        return Err(invalid(
            "",
            "has nothing to change: give success_status (200 or 202), name, qolio_compatible \
             (true or false), or several"
                .into(),
        ));
    }
    Ok(changes)
}

/// A refused attribute, or the attributes as a whole when `attribute` is empty.
fn invalid(attribute: &str, message: String) -> ApiError {
    let (field, pointer) = if attribute.is_empty() {
        ("data.attributes".to_owned(), "/data/attributes".to_owned())
    } else {
        (
            format!("data.attributes.{attribute}"),
            format!("/data/attributes/{attribute}"),
        )
    };
    ApiError::InvalidRows(vec![(field, pointer, message)])
}

fn resource(i: &IntegrationInfo, base: &str) -> Value {
    let mut attributes = serde_json::to_value(i).unwrap_or_default();
    if let Some(map) = attributes.as_object_mut() {
        map.remove("id");
        map.insert("url".into(), json!(integrations::url(base, i.id)));
    }
    json!({"type": "api_integrations", "id": i.id, "attributes": attributes})
}
