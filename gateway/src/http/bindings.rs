//! The product's user-binding admin API: import the integration's operator list, export it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use shared::store::bindings::{self, BindingRow, ImportError};

use super::auth::{self, Admin};
use super::error::ApiError;
use super::openapi::answers::{
    AdminErrors, BindingsImport, BindingsImported, ErrorDocument, Unavailable,
};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/api_integrations/{integration_id}/import_user_account_bindings",
            put(import),
        )
        .route(
            "/api/v1/api_integrations/{integration_id}/user_account_bindings_csv",
            get(export),
        )
}

#[derive(Deserialize)]
struct ImportBody {
    data: Vec<BindingRow>,
}

/// Import the integration's operators
///
/// The list replaces the integration's bindings: operators not in it are deactivated.
#[utoipa::path(
    put,
    path = "/api/v1/api_integrations/{integration_id}/import_user_account_bindings",
    operation_id = "import_user_account_bindings",
    tag = "admin",
    params(("integration_id" = Uuid, Path, description = "The integration")),
    request_body(content = BindingsImport, content_type = "application/json"),
    responses(
        (status = 200, description = "Imported", body = BindingsImported),
        (status = 404, description = "No such integration", body = ErrorDocument, content_type = "application/vnd.api+json"),
        (status = 422, description = "Rows at fault, one error object each, with its pointer", body = ErrorDocument, content_type = "application/vnd.api+json"),
        AdminErrors,
        Unavailable,
    ),
    security(("admin_token" = []))
)]
async fn import(
    State(app): State<AppState>,
    _: Admin,
    IntegrationId(integration_id): IntegrationId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: ImportBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::InvalidRows(vec![(
            "data".into(),
            "/data".into(),
            format!("must be {{\"data\": [{{\"email\", \"first_name\", \"last_name\", \"integration_uid\", \"department\"?, \"active\"?}}]}} ({e})"),
        )])
    })?;
    match bindings::import(&app.pool, integration_id, &body.data).await {
        Ok(summary) => Ok(Json(json!({ "data": summary })).into_response()),
        Err(ImportError::Invalid(rows)) => {
            let row_name = |i: usize| format!("data[{i}]");
            Err(ApiError::InvalidRows(
                rows.iter()
                    .map(|e| {
                        (
                            format!("data[{}].{}", e.index, e.field),
                            format!("/data/{}/{}", e.index, e.field),
                            e.describe(row_name),
                        )
                    })
                    .collect(),
            ))
        }
        Err(ImportError::UnknownIntegration(id)) => {
            Err(ApiError::NotFound(format!("no integration {id}")))
        }
        Err(ImportError::Database(e)) => Err(e.into()),
    }
}

/// Export the integration's operators as CSV
#[utoipa::path(
    get,
    path = "/api/v1/api_integrations/{integration_id}/user_account_bindings_csv",
    operation_id = "export_user_account_bindings",
    tag = "admin",
    params(("integration_id" = Uuid, Path, description = "The integration")),
    responses(
        (status = 200, description = "The bindings, one row each", body = String, content_type = "text/csv"),
        (status = 404, description = "No such integration", body = ErrorDocument, content_type = "application/vnd.api+json"),
        AdminErrors,
        Unavailable,
    ),
    security(("admin_token" = []))
)]
async fn export(
    State(app): State<AppState>,
    _: Admin,
    IntegrationId(integration_id): IntegrationId,
) -> Result<Response, ApiError> {
    if shared::store::accounts::integration_auth(&app.pool, integration_id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!(
            "no integration {integration_id}"
        )));
    }
    let csv = bindings::export_csv(&app.pool, integration_id).await?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}

struct IntegrationId(uuid::Uuid);

impl axum::extract::FromRequestParts<AppState> for IntegrationId {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &AppState,
    ) -> Result<Self, ApiError> {
        auth::integration_id(parts, app).await.map(Self)
    }
}
