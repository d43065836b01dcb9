//! The `{uid}` of `/api/v1/integrations/{integration_id}/phone_calls/{uid}`, parsed as a
//! call's uid is when it arrives: a path naming no call that could exist (empty, too long,
//! NUL, percent-escapes that are not UTF-8) is answered 404 before anything is looked up.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use shared::domain::ExternalId;

use super::error::ApiError;

pub struct CallUid(pub ExternalId);

impl<S: Send + Sync> FromRequestParts<S> for CallUid {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| no_such_call("be valid UTF-8 once percent-decoded"))?;
        let raw = params
            .get("uid")
            .ok_or_else(|| no_such_call("not be empty"))?;
        ExternalId::parse(raw)
            .map(Self)
            .map_err(|e| ApiError::NotFound(format!("no call has this uid: a uid {e}")))
    }
}

fn no_such_call(must: &str) -> ApiError {
    ApiError::NotFound(format!("no call has this uid: a uid must {must}"))
}
