//! Who is calling: an integration by its token, or an operator of the service by the admin
//! token. Both read the raw `Authorization` value existing clients send, or `Bearer`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use secrecy::ExposeSecret;
use shared::store::accounts::{self, IntegrationAuth};
use shared::token;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::error::ApiError;
use crate::state::AppState;

/// The integration named in the path, authenticated by its own token. The token's shape is
/// checked before anything is looked up: a request without one of ours never reaches Postgres.
pub struct Integration(pub Arc<IntegrationAuth>);

impl FromRequestParts<AppState> for Integration {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let id = integration_id(parts, app).await?;
        let presented = bearer(parts).ok_or(ApiError::Unauthorized(
            "send the integration token in the Authorization header",
        ))?;
        let presented = token::Presented::parse(presented).ok_or(ApiError::Unauthorized(
            "the token is not valid for this integration",
        ))?;
        let found = app
            .integrations
            .get(id, async {
                accounts::integration_auth(&app.pool, id)
                    .await
                    .map(|found| found.map(Arc::new))
            })
            .await?;
        let Some(integration) = found else {
            return Err(ApiError::NotFound(format!("no integration {id}")));
        };
        // A token is checked against the hash of the integration in the path only, so a
        // valid token on another integration's URL fails exactly like a wrong one.
        if !presented.matches(&integration.token_hash) {
            return Err(ApiError::Unauthorized(
                "the token is not valid for this integration",
            ));
        }
        Ok(Self(integration))
    }
}

/// An operator of the service, holding `admin.token`.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let expected = app.settings.admin.token.expose_secret();
        if expected.is_empty() {
            return Err(ApiError::Unauthorized(
                "the admin API is disabled: set admin.token (APP_ADMIN__TOKEN)",
            ));
        }
        match bearer(parts) {
            Some(presented) if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) => {
                Ok(Self)
            }
            _ => Err(ApiError::Unauthorized(
                "send the admin token in the Authorization header",
            )),
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    Some(token::from_header(value)).filter(|t| !t.is_empty())
}

/// `{integration_id}` of the path; anything that is not a UUID names no integration.
pub async fn integration_id(parts: &mut Parts, app: &AppState) -> Result<Uuid, ApiError> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, app)
        .await
        .map_err(|_| ApiError::NotFound("no such integration".into()))?;
    params
        .get("integration_id")
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| ApiError::NotFound("no such integration".into()))
}
