//! The gateway's OpenAPI 3.1 document, served at `GET /openapi.json`: the operations come from
//! the handlers' `#[utoipa::path]` annotations, the bodies' schemas from `call_schema.rs` and
//! `text_schema.rs` with this deployment's `[limits]`.

pub mod answers;
pub mod call_schema;
mod fields;
pub mod text_schema;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use shared::config::Settings;
use shared::domain::MediaStatus;
use shared::store::dead_letters::Reason;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{bindings, dead_letters, health, integrations, media, phone_calls, text};

pub const PATH: &str = "/openapi.json";

const CALLS: &str = "/api/v1/integrations/{integration_id}/phone_calls";
const TEXTS: &str = "/api/v1/integrations/{integration_id}/text";

/// Security scheme names, as the handlers' annotations use them.
pub const INTEGRATION_TOKEN: &str = "integration_token";
pub const ADMIN_TOKEN: &str = "admin_token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "callq",
        description = "A drop-in receiver for Qolio's call-ingestion API: a PBX posts each \
            call, the gateway answers once the call is safely queued, workers store it and probe \
            its recording; chats, tickets and emails are taken the same way. The admin API (dead letters, operator bindings, media reprobe) and \
            /metrics are for the service's operators; with `admin.listen` set they are served on \
            that listener only."
    ),
    paths(
        phone_calls::create,
        phone_calls::show,
        text::create,
        text::show,
        bindings::import,
        bindings::export,
        integrations::list,
        integrations::show,
        integrations::update,
        dead_letters::list,
        dead_letters::purge,
        dead_letters::replay,
        dead_letters::show,
        media::reprobe,
        health::healthz,
        health::readyz,
    ),
    modifiers(&Security),
    tags(
        (name = "calls", description = "The Qolio call-ingestion contract"),
        (name = "texts", description = "Chats, tickets and emails, taken as calls are"),
        (name = "admin", description = "Operating the service: guarded by `admin.token`"),
        (name = "health", description = "Probes, metrics and this document"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            INTEGRATION_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "The integration's token, raw as the Qolio page sends it (`Bearer <token>` is \
                 read too). It opens only the integration named in the path.",
            ))),
        );
        components.add_security_scheme(
            ADMIN_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "The service's `admin.token` (APP_ADMIN__TOKEN), raw or as `Bearer <token>`.",
            ))),
        );
    }
}

/// The document as served: the derived one, with the bodies' schemas and examples for these
/// settings, and the routes that have no handler of ours to annotate.
pub fn document(settings: &Settings) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    doc["openapi"] = json!("3.1.0");
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    let schemas = &mut doc["components"]["schemas"];
    schemas[call_schema::NAME] = call_schema::document(&settings.limits);
    schemas[text_schema::NAME] = text_schema::document(&settings.limits);
    for (path, examples) in [
        (CALLS, call_schema::examples()),
        (TEXTS, text_schema::examples()),
    ] {
        let examples: serde_json::Map<String, Value> = examples
            .into_iter()
            .map(|(name, summary, value)| {
                (name.into(), json!({"summary": summary, "value": value}))
            })
            .collect();
        let create = &mut doc["paths"][path]["post"];
        create["requestBody"]["content"]["application/json"]["examples"] = Value::Object(examples);
    }
    let reasons = Reason::ALL.map(Reason::as_str);
    for (path, method) in [
        ("/api/v1/dead_letters", "get"),
        ("/api/v1/dead_letters", "delete"),
        ("/api/v1/dead_letters/replay", "post"),
    ] {
        set_enum(&mut doc["paths"][path][method], "reason", &reasons);
    }
    let statuses = MediaStatus::ALL.map(MediaStatus::as_str);
    set_enum(
        &mut doc["paths"]["/api/v1/media/reprobe"]["post"],
        "status",
        &statuses,
    );
    let paths = doc["paths"]
        .as_object_mut()
        .expect("the document has paths");
    paths.insert("/metrics".into(), metrics_path());
    paths.insert(PATH.into(), self_path());
    paths.insert(super::docs::PATH.into(), docs_path());
    doc
}

/// The values a query parameter takes, from the enum the handler reads it into.
fn set_enum(operation: &mut Value, parameter: &str, values: &[&str]) {
    let parameters = operation["parameters"].as_array_mut();
    for p in parameters.into_iter().flatten() {
        if p["name"] == parameter {
            p["schema"]["enum"] = json!(values);
        }
    }
}

fn metrics_path() -> Value {
    json!({"get": {
        "tags": ["health"],
        "summary": "Prometheus metrics",
        "description": "The gateway's metrics in the OpenMetrics text format. With `admin.listen` \
            set, served on that listener only.",
        "operationId": "metrics",
        "responses": {"200": {
            "description": "The metrics",
            "content": {"application/openmetrics-text": {"schema": {"type": "string"}}},
        }},
    }})
}

fn self_path() -> Value {
    json!({"get": {
        "tags": ["health"],
        "summary": "This document",
        "operationId": "openapi",
        "responses": {"200": {
            "description": "The OpenAPI 3.1 document",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }},
    }})
}

fn docs_path() -> Value {
    json!({"get": {
        "tags": ["health"],
        "summary": "This document, rendered (Swagger UI, served from the gateway itself)",
        "operationId": "docs",
        "responses": {
            "200": {
                "description": "The page",
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
            "303": {"description": "To the page under /docs/"},
        },
    }})
}

pub fn router<S: Clone + Send + Sync + 'static>(document: Value) -> Router<S> {
    Router::new().route(PATH, get(move || async move { Json(document) }))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod text_tests;
