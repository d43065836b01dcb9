//! The document against the code it describes: the call's schema against the real parser,
//! its examples against the parser, its limits against the settings; the admin API's
//! integration schemas against what it answers and reads. The text's: `text_tests.rs`.

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use serde_json::{json, Value};
use shared::config::Settings;
use shared::contract::{parse_call, Body, FieldErrors};
use shared::domain::FieldType;
use shared::store::integrations::IntegrationInfo;
use uuid::Uuid;

use super::call_schema::{self, examples};
use super::document;
use crate::http::integrations::parse_changes;

fn parse(body: &Value) -> Result<(), FieldErrors> {
    let limits = Settings::defaults().limits;
    parse_call(
        &Body::from(body),
        &HashMap::<String, FieldType>::new(),
        &limits,
    )
    .map(|_| ())
}

fn properties() -> serde_json::Map<String, Value> {
    let schema = call_schema::document(&Settings::defaults().limits);
    schema["properties"].as_object().unwrap().clone()
}

#[test]
fn the_document_is_openapi_3_1_with_the_call_schema_and_both_tokens() {
    let doc = document(&Settings::defaults());
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["schemas"]["PhoneCall"]["required"],
        json!(["operator_id", "started_at", "media_url"])
    );
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("integration_token") && schemes.contains_key("admin_token"));
    let create = &doc["paths"]["/api/v1/integrations/{integration_id}/phone_calls"]["post"];
    let body = &create["requestBody"]["content"]["application/json"];
    assert_eq!(body["schema"]["$ref"], "#/components/schemas/PhoneCall");
    for status in ["202", "401", "404", "413", "415", "422", "429", "503"] {
        assert!(
            create["responses"][status].is_object(),
            "no {status} answer"
        );
    }
    assert!(create["responses"]["503"]["headers"]["Retry-After"].is_object());
}

#[test]
fn every_example_in_the_document_is_a_call_the_parser_accepts() {
    let doc = document(&Settings::defaults());
    let create = &doc["paths"]["/api/v1/integrations/{integration_id}/phone_calls"]["post"];
    let shown = create["requestBody"]["content"]["application/json"]["examples"]
        .as_object()
        .unwrap();
    assert_eq!(shown.len(), examples().len());
    assert!(shown.contains_key("qolio"));
    for (name, example) in shown {
        parse(&example["value"]).unwrap_or_else(|e| panic!("example {name} refused: {e}"));
    }
}

/// Every property of the schema is one the parser reads: a value of no type the schema
/// allows is refused under that property's name.
#[test]
fn every_property_of_the_schema_is_read_by_the_parser() {
    let (_, _, minimal) = examples().into_iter().find(|e| e.0 == "minimal").unwrap();
    for name in properties().keys() {
        let mut body = minimal.clone();
        body[name] = json!([{"not": [true]}]);
        let errors = parse(&body).expect_err(name);
        assert!(
            errors.iter().any(|e| e.field.starts_with(name.as_str())),
            "{name}: {errors}"
        );
    }
}

#[test]
fn the_required_fields_are_the_ones_the_parser_requires() {
    let schema = call_schema::document(&Settings::defaults().limits);
    let (_, _, minimal) = examples().into_iter().find(|e| e.0 == "minimal").unwrap();
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        minimal
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect()
    );
    parse(&minimal).unwrap();
    for name in &required {
        let mut body = minimal.clone();
        body.as_object_mut().unwrap().remove(*name);
        let errors = parse(&body).expect_err(name);
        assert!(errors
            .iter()
            .any(|e| e.field == *name && e.message == "is required"));
    }
}

/// The contract's table of fields (docs/contract.md) and the schema name the same fields;
/// `metacontent` is the old name the contract mentions under `custom_fields`.
#[test]
fn the_schema_has_the_fields_of_the_contract() {
    let contract = include_str!("../../../../docs/contract.md");
    let body = contract.split("## Body").nth(1).unwrap();
    let table = body.split("\n\n").nth(1).unwrap();
    let documented: BTreeSet<String> = table
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .chain(["metacontent".to_owned()])
        .collect();
    let schema: BTreeSet<String> = properties().keys().cloned().collect();
    assert_eq!(schema, documented);
}

#[test]
fn the_schema_carries_the_limits_of_the_settings() {
    let mut settings = Settings::defaults();
    settings.limits.max_phrases = 7;
    settings.limits.max_custom_fields = 11;
    let doc = document(&settings);
    let call = &doc["components"]["schemas"]["PhoneCall"]["properties"];
    assert_eq!(call["transcription"]["maxItems"], 7);
    assert_eq!(call["custom_fields"]["maxProperties"], 11);
}

/// The integration resource's schema has the attributes the admin API answers, and the PATCH
/// body's the attributes it reads (it refuses any other).
#[test]
fn the_integration_schemas_have_the_attributes_of_the_admin_api() {
    let doc = document(&Settings::defaults());
    let schemas = &doc["components"]["schemas"];
    let keys = |v: &Value| -> BTreeSet<String> { v.as_object().unwrap().keys().cloned().collect() };
    let info = IntegrationInfo {
        id: Uuid::nil(),
        organisation_id: Uuid::nil(),
        organisation: "Org".into(),
        name: "PBX".into(),
        success_status: 202,
        qolio_compatible: true,
        created_at: Utc::now(),
        token_rotated_at: Utc::now(),
        active_bindings: 1,
        inactive_bindings: 0,
    };
    let mut answered = keys(&serde_json::to_value(info).unwrap());
    answered.remove("id");
    answered.insert("url".into());
    assert_eq!(
        keys(&schemas["IntegrationAttributes"]["properties"]),
        answered
    );

    let changes = &schemas["IntegrationChanges"]["properties"];
    assert!(changes["qolio_compatible"].is_object());
    let every = json!({"name": "PBX", "success_status": 200, "qolio_compatible": true});
    assert_eq!(keys(changes), keys(&every));
    let patch = |attributes: Value| {
        parse_changes(&serde_json::to_vec(&json!({"data": {"attributes": attributes}})).unwrap())
    };
    let parsed = patch(every).unwrap_or_else(|_| panic!("refused"));
    assert_eq!(parsed.qolio_compatible, Some(true));
    assert!(patch(json!({"name": "PBX", "other": 1})).is_err());
}
