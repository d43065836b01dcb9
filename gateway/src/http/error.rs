//! Every error the gateway answers, mapped to the contract's JSON:API error documents here
//! and nowhere else. Internal errors are logged and answered without their details.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use shared::contract::FieldErrors;
use shared::store::availability;

/// Seconds a client is told to wait before retrying a call we could not queue.
const RETRY_AFTER_SECS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong token")]
    Unauthorized(&'static str),
    #[error("not found")]
    NotFound(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("body over {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("invalid fields: {0}")]
    Invalid(FieldErrors),
    /// (field name, JSON pointer, message) for requests that are not calls.
    #[error("invalid request")]
    InvalidRows(Vec<(String, String, String)>),
    #[error("over the integration's rate")]
    RateLimited { retry_after_secs: u64 },
    #[error("cannot queue right now: {0}")]
    Unavailable(String),
    /// Over `http.max_concurrent_requests`: shed at once rather than queued.
    #[error("over the concurrent request bound")]
    Overloaded { retry_after_secs: u64 },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match database_unavailable(&e) {
            Some(unavailable) => unavailable,
            None => Self::Internal(e.into()),
        }
    }
}

/// A cache load's error, shared by every request that awaited that load.
impl From<Arc<sqlx::Error>> for ApiError {
    fn from(e: Arc<sqlx::Error>) -> Self {
        match Arc::try_unwrap(e) {
            Ok(e) => e.into(),
            Err(shared) => match database_unavailable(&shared) {
                Some(unavailable) => unavailable,
                None => Self::Internal(anyhow::Error::new(shared)),
            },
        }
    }
}

/// The database being unreachable is a reason to retry, not a bug.
fn database_unavailable(e: &sqlx::Error) -> Option<ApiError> {
    availability::unavailable(e).then(|| {
        tracing::warn!(error = %e, "database unavailable");
        ApiError::Unavailable(format!("database: {e}"))
    })
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid(_) | Self::InvalidRows(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn errors(&self) -> Vec<Value> {
        let status = self.status();
        let one = |detail: String| vec![error_object(status, detail, None)];
        match self {
            Self::Unauthorized(why) => one((*why).to_owned()),
            Self::NotFound(what) | Self::BadRequest(what) => one(what.clone()),
            Self::PayloadTooLarge { limit } => one(format!(
                "the body is larger than {limit} bytes; send one call per request"
            )),
            Self::UnsupportedMediaType(why) => one(why.clone()),
            Self::Invalid(fields) => fields
                .iter()
                .map(|e| {
                    error_object(
                        status,
                        format!("{} {}", e.field, e.message),
                        Some((&e.field, &e.pointer, &e.message)),
                    )
                })
                .collect(),
            Self::InvalidRows(rows) => rows
                .iter()
                .map(|(field, pointer, message)| {
                    error_object(
                        status,
                        format!("{field} {message}"),
                        Some((field, pointer, message)),
                    )
                })
                .collect(),
            Self::RateLimited { retry_after_secs } => one(format!(
                "this integration is sending more calls than its rate allows; retry in {retry_after_secs} s"
            )),
            Self::Unavailable(_) => {
                one("the call could not be queued right now; retry later".into())
            }
            Self::Overloaded { retry_after_secs } => one(format!(
                "the gateway is serving as many requests as it may at once; retry in \
                 {retry_after_secs} s"
            )),
            Self::Internal(_) => one("internal error".into()),
        }
    }
}

fn error_object(
    status: StatusCode,
    detail: String,
    field: Option<(&String, &String, &String)>,
) -> Value {
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(' ', "_");
    let mut object = json!({
        "status": status.as_u16(),
        "code": code,
        "title": "Error in request processing",
        "detail": detail,
    });
    if let Some((name, pointer, message)) = field {
        object["fields"] = json!({ name.as_str(): [message] });
        object["source"] = json!({ "pointer": pointer });
    }
    object
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(e) => tracing::error!(error = ?e, "internal error"),
            // The cause was logged where it was found; this would repeat it per request.
            Self::Unavailable(why) => tracing::debug!(%why, "answering 503"),
            _ => {}
        }
        let mut document = json!({ "errors": self.errors() });
        if let Self::Invalid(fields) = &self {
            if fields.omitted() > 0 {
                document["meta"] = json!({ "omitted_errors": fields.omitted() });
            }
        }
        let mut response = (self.status(), Json(document)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.api+json"),
        );
        match self {
            Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            Self::RateLimited { retry_after_secs } | Self::Overloaded { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        response
    }
}
