//! The shapes of the gateway's answers, as the document shows them: the JSON:API error
//! document every refusal carries (built in `http/error.rs`), the error answers each kind of
//! endpoint may give, and the admin API's documents, which the handlers build as JSON.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use utoipa::{IntoResponses, ToSchema};
use uuid::Uuid;

/// Every error answer: `application/vnd.api+json`, one error object per problem.
#[derive(ToSchema)]
pub struct ErrorDocument {
    pub errors: Vec<ErrorObject>,
    pub meta: Option<ErrorMeta>,
}

#[derive(ToSchema)]
pub struct ErrorObject {
    /// The HTTP status, repeated.
    #[schema(example = 422)]
    pub status: u16,
    /// The status' reason in snake case: `unprocessable_entity`, `not_found`, ...
    #[schema(example = "unprocessable_entity")]
    pub code: String,
    #[schema(example = "Error in request processing")]
    pub title: String,
    /// What went wrong and how to fix it, in words.
    #[schema(example = "started_at must be a string with an ISO 8601 date-time")]
    pub detail: String,
    /// The field at fault (422 only), as a JSON pointer into the body.
    pub source: Option<ErrorSource>,
    /// The field at fault (422 only): its dotted name -> its messages.
    pub fields: Option<HashMap<String, Vec<String>>>,
}

#[derive(ToSchema)]
pub struct ErrorSource {
    #[schema(example = "/started_at")]
    pub pointer: String,
}

#[derive(ToSchema)]
pub struct ErrorMeta {
    /// Errors found past `limits.max_errors`, counted but not described.
    pub omitted_errors: Option<u64>,
}

/// What a client must be ready for on any endpoint.
#[derive(IntoResponses)]
pub enum Unavailable {
    /// Cannot answer right now (the broker or the database is away, the request overran
    /// `http.request_timeout_ms`, or the gateway serves `http.max_concurrent_requests`
    /// already): retry after `Retry-After` seconds.
    #[response(
        status = 503,
        content_type = "application/vnd.api+json",
        headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))
    )]
    Unavailable(#[to_schema] ErrorDocument),
}

/// Refusals of the admin API.
#[derive(IntoResponses)]
pub enum AdminErrors {
    /// No admin token, a wrong one, or the admin API is disabled (`admin.token` empty).
    #[response(status = 401, content_type = "application/vnd.api+json")]
    Unauthorized(#[to_schema] ErrorDocument),
    /// A query parameter that cannot be read; the detail names it and lists the accepted ones.
    #[response(status = 400, content_type = "application/vnd.api+json")]
    BadRequest(#[to_schema] ErrorDocument),
}

/// `GET /healthz`.
#[derive(ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// `GET /readyz`.
#[derive(ToSchema)]
pub struct Readiness {
    /// The broker confirms publishes: a call could be queued now.
    pub broker: bool,
}

/// `GET .../phone_calls/{uid}`: the call stored, dead-lettered or still queued.
#[derive(ToSchema)]
pub struct CallDocument {
    pub data: CallResource,
    /// The operator, department and client of a stored call.
    pub included: Option<Vec<Resource>>,
}

#[derive(ToSchema)]
pub struct CallResource {
    #[serde(rename = "type")]
    #[schema(example = "phone_calls")]
    pub kind: String,
    /// The call's uid.
    pub id: String,
    /// `status` is `stored` (with the call's fields and its media probe), `dead_lettered`
    /// (with the reason, the detail and how to replay it) or `queued`.
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    #[schema(value_type = Option<Object>)]
    pub relationships: Option<serde_json::Value>,
}

/// `GET .../text/{uid}`: the communication stored, dead-lettered or still queued.
#[derive(ToSchema)]
pub struct TextDocument {
    pub data: TextResource,
    /// The operator and department of a stored communication.
    pub included: Option<Vec<Resource>>,
}

#[derive(ToSchema)]
pub struct TextResource {
    #[serde(rename = "type")]
    #[schema(example = "text_communications")]
    pub kind: String,
    /// The communication's uid.
    pub id: String,
    /// `status` is `stored` (with the communication's fields, its `communication_status` and
    /// its `communication_parts` by `created_at`), `dead_lettered` (with the reason, the detail
    /// and how to replay it) or `queued`.
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    #[schema(value_type = Option<Object>)]
    pub relationships: Option<serde_json::Value>,
}

/// A JSON:API resource.
#[derive(ToSchema)]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
}

/// `GET /api/v1/dead_letters`.
#[derive(ToSchema)]
pub struct DeadLetterList {
    pub data: Vec<DeadLetterResource>,
    pub meta: DeadLetterListMeta,
}

#[derive(ToSchema)]
pub struct DeadLetterListMeta {
    /// Dead letters matching the filter.
    pub total: i64,
    pub counts_by_reason: HashMap<String, i64>,
    /// Pass as `before` for the next page; null on the last.
    pub next_before: Option<Uuid>,
}

/// `GET /api/v1/dead_letters/{id}`.
#[derive(ToSchema)]
pub struct DeadLetterDocument {
    pub data: DeadLetterResource,
}

#[derive(ToSchema)]
pub struct DeadLetterResource {
    #[serde(rename = "type")]
    #[schema(example = "dead_letters")]
    pub kind: String,
    pub id: Uuid,
    /// reason, detail, attempts, first_failed_at, last_failed_at, ...; one shown whole also
    /// has the message as it was set aside and its encoding.
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
}

/// Replay, purge and reprobe: what was done (or, with `dry_run`, would be).
#[derive(ToSchema)]
pub struct MetaDocument {
    /// `dry_run`, and the counts of the operation: `would_replay`, `replayed`,
    /// `remaining`; `would_purge`, `purged`; `matched`, `queued`, `next_after`.
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// `PUT .../import_user_account_bindings`.
#[derive(ToSchema)]
pub struct BindingsImport {
    pub data: Vec<BindingRow>,
}

/// An operator of the integration's organisation.
#[derive(ToSchema)]
pub struct BindingRow {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The id calls name the operator by (`operator_id`).
    pub integration_uid: Option<String>,
    pub department: Option<String>,
    pub active: Option<bool>,
}

#[derive(ToSchema)]
pub struct BindingsImported {
    pub data: ImportSummary,
}

#[derive(ToSchema)]
pub struct ImportSummary {
    pub imported: u64,
    pub deactivated: u64,
}

/// `GET /api/v1/api_integrations`.
#[derive(ToSchema)]
pub struct IntegrationList {
    pub data: Vec<IntegrationResource>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// One integration; after a change, `meta.other_gateways_within_secs` says when every gateway
/// applies it.
#[derive(ToSchema)]
pub struct IntegrationDocument {
    pub data: IntegrationResource,
    #[schema(value_type = Option<Object>)]
    pub meta: Option<serde_json::Value>,
}

#[derive(ToSchema)]
pub struct IntegrationResource {
    #[serde(rename = "type")]
    #[schema(example = "api_integrations")]
    pub kind: String,
    pub id: Uuid,
    pub attributes: IntegrationAttributes,
}

/// An integration's settings and state (`shared::store::integrations::IntegrationInfo`);
/// never its token.
#[derive(ToSchema)]
pub struct IntegrationAttributes {
    pub organisation_id: Uuid,
    pub organisation: String,
    pub name: String,
    /// What an accepted call or text is answered: 202, or 200 for clients of the real API.
    #[schema(example = 202)]
    pub success_status: i16,
    /// An unknown or inactive operator's call or text is refused at once with the real API's
    /// 422 («Необходимо, чтобы был определен активный оператор»), instead of being set aside
    /// and replayed once the operator is bound.
    pub qolio_compatible: bool,
    pub created_at: DateTime<Utc>,
    pub token_rotated_at: DateTime<Utc>,
    /// Operators bound to the integration, active and not.
    pub active_bindings: i64,
    pub inactive_bindings: i64,
    /// Where the integration's calls are posted (its texts: `.../text` beside it).
    pub url: String,
}

/// `PATCH /api/v1/api_integrations/{integration_id}`: any of the attributes, at least one.
#[derive(ToSchema)]
pub struct IntegrationPatch {
    pub data: IntegrationPatchData,
}

#[derive(ToSchema)]
pub struct IntegrationPatchData {
    pub attributes: IntegrationChanges,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationChanges {
    /// Unique within the organisation.
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    /// What an accepted call is answered: 202, or 200 for clients of the real API.
    #[schema(minimum = 200, maximum = 202)]
    pub success_status: Option<u16>,
    /// Refuse an unknown or inactive operator's call or text at once with the real API's 422
    /// (true), or set it aside and replay it once the operator is bound (false).
    pub qolio_compatible: Option<bool>,
}
