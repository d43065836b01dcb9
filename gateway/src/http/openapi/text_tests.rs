//! The text communication's schema against the real parser: its examples, its properties,
//! its required fields, its exclusions, its limits, and the contract's table of fields.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};
use shared::config::Settings;
use shared::contract::{parse_text, Body, FieldErrors};
use shared::domain::FieldType;

use super::text_schema::{self, examples};
use super::{document, TEXTS};
use crate::http::operator_refusal::QOLIO_MESSAGE;

fn parse(body: &Value) -> Result<(), FieldErrors> {
    let limits = Settings::defaults().limits;
    parse_text(
        &Body::from(body),
        &HashMap::<String, FieldType>::new(),
        &limits,
    )
    .map(|_| ())
}

fn schema() -> Value {
    text_schema::document(&Settings::defaults().limits)
}

fn minimal() -> Value {
    examples().into_iter().find(|e| e.0 == "minimal").unwrap().2
}

/// The smallest part the parser takes.
fn part() -> Value {
    json!({
        "communication_part_id": "p-1",
        "author": {"type": "client"},
        "body": "",
        "created_at": "2024-05-01T12:00:00Z",
    })
}

/// The minimal communication with `part` as its only part.
fn with_part(part: Value) -> Value {
    let mut body = minimal();
    body["communication_parts"] = json!([part]);
    body
}

fn names(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn assert_refused_under(body: &Value, field: &str) {
    let errors = parse(body).expect_err(field);
    assert!(
        errors.iter().any(|e| e.field.starts_with(field)),
        "{field}: {errors}"
    );
}

#[test]
fn the_document_has_both_text_operations_with_the_schema_and_every_answer() {
    let doc = document(&Settings::defaults());
    assert_eq!(doc["components"]["schemas"]["TextCommunication"], schema());
    let create = &doc["paths"][TEXTS]["post"];
    let body = &create["requestBody"]["content"]["application/json"];
    assert_eq!(
        body["schema"]["$ref"],
        "#/components/schemas/TextCommunication"
    );
    for status in [
        "200", "202", "401", "404", "413", "415", "422", "429", "503",
    ] {
        assert!(
            create["responses"][status].is_object(),
            "no {status} answer"
        );
    }
    assert!(create["responses"]["429"]["headers"]["Retry-After"].is_object());
    assert!(create["responses"]["503"]["headers"]["Retry-After"].is_object());
    let show = &doc["paths"][format!("{TEXTS}/{{uid}}")]["get"];
    for status in ["200", "401", "404", "503"] {
        assert!(show["responses"][status].is_object(), "no {status} answer");
    }
    // Both POSTs tell that a Qolio-compatible integration refuses an unknown operator.
    for path in [TEXTS, super::CALLS] {
        let refusal = doc["paths"][path]["post"]["responses"]["422"]["description"]
            .as_str()
            .unwrap();
        assert!(refusal.contains(QOLIO_MESSAGE), "{path}: {refusal}");
    }
}

#[test]
fn every_example_in_the_document_is_a_text_the_parser_accepts() {
    let doc = document(&Settings::defaults());
    let shown = doc["paths"][TEXTS]["post"]["requestBody"]["content"]["application/json"]
        ["examples"]
        .as_object()
        .unwrap();
    assert_eq!(shown.len(), examples().len());
    for (name, example) in shown {
        parse(&example["value"]).unwrap_or_else(|e| panic!("example {name} refused: {e}"));
    }
}

/// Every property of the schema, and of a part and its author, is one the parser reads: a
/// value of no type the schema allows is refused under that property's name.
#[test]
fn every_property_of_the_schema_is_read_by_the_parser() {
    let bad = json!([{"not": [true]}]);
    let schema = schema();
    for name in schema["properties"].as_object().unwrap().keys() {
        let mut body = minimal();
        body[name] = bad.clone();
        assert_refused_under(&body, name);
    }
    let parts = &schema["properties"]["communication_parts"]["items"];
    for name in parts["properties"].as_object().unwrap().keys() {
        let mut part = part();
        part[name] = bad.clone();
        assert_refused_under(&with_part(part), &format!("communication_parts[0].{name}"));
    }
    let author = &parts["properties"]["author"];
    for name in author["properties"].as_object().unwrap().keys() {
        let mut part = part();
        part["author"][name] = bad.clone();
        assert_refused_under(
            &with_part(part),
            &format!("communication_parts[0].author.{name}"),
        );
    }
}

/// A part's required fields are the parser's; the communication's only requirement is an
/// operator, by operator_id or by an operator author, as the schema's `anyOf` says.
#[test]
fn the_required_fields_are_the_ones_the_parser_requires() {
    let schema = schema();
    let items = &schema["properties"]["communication_parts"]["items"];
    let part_keys: BTreeSet<String> = part().as_object().unwrap().keys().cloned().collect();
    assert_eq!(names(&items["required"]), part_keys);
    parse(&with_part(part())).unwrap();
    for name in &part_keys {
        let mut part = part();
        part.as_object_mut().unwrap().remove(name);
        let errors = parse(&with_part(part)).expect_err(name);
        let field = format!("communication_parts[0].{name}");
        assert!(
            errors
                .iter()
                .any(|e| e.field == field && e.message == "is required"),
            "{field}: {errors}"
        );
    }
    let mut anonymous = part();
    anonymous["author"] = json!({"id": "x"});
    assert_refused_under(&with_part(anonymous), "communication_parts[0].author.type");
    assert_eq!(
        names(&items["properties"]["author"]["required"]),
        ["type".to_owned()].into()
    );

    assert!(schema.get("required").is_none());
    assert_eq!(
        names(&schema["anyOf"][0]["required"]),
        ["operator_id".to_owned()].into()
    );
    parse(&minimal()).unwrap();
    let mut without = with_part(part());
    without.as_object_mut().unwrap().remove("operator_id");
    assert_refused_under(&without, "operator_id");
    without["operator_id"] = Value::Null;
    assert_refused_under(&without, "operator_id");
    // An operator author without an id names no one.
    without["communication_parts"][0]["author"] = json!({"type": " Operator ", "id": null});
    assert_refused_under(&without, "operator_id");
    without["communication_parts"][0]["author"]["id"] = json!("operator@email.com");
    parse(&without).unwrap();
}

/// What the schema's `not` excludes, the parser refuses; a null counts as absent where the
/// parser says so.
#[test]
fn the_excluded_pairs_are_the_ones_the_parser_refuses() {
    let exclusions = &schema()["not"]["anyOf"];
    assert_eq!(
        names(&exclusions[0]["required"]),
        ["custom_fields".to_owned(), "metacontent".to_owned()].into()
    );
    assert_eq!(
        names(&exclusions[1]["required"]),
        ["uid".to_owned(), "communication_id".to_owned()].into()
    );
    let mut body = minimal();
    body["custom_fields"] = Value::Null;
    body["metacontent"] = json!({});
    assert_refused_under(&body, "metacontent");
    let mut body = minimal();
    body["uid"] = json!("a");
    body["communication_id"] = json!("b");
    assert_refused_under(&body, "communication_id");
    body["communication_id"] = Value::Null;
    parse(&body).unwrap();
}

/// The contract's table of fields (docs/contract.md, "Text channels") and the schema name the
/// same fields; `communication_id` and `metacontent` are the other names it mentions.
#[test]
fn the_schema_has_the_fields_of_the_contract() {
    let contract = include_str!("../../../../docs/contract.md");
    let section = contract.split("## Text channels").nth(1).unwrap();
    let table = section
        .split("\n\n")
        .find(|block| block.starts_with("| field"))
        .unwrap();
    let documented: BTreeSet<String> = table
        .lines()
        .filter_map(|line| line.split('|').nth(1))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2).map(str::to_owned))
        .chain(["communication_id".to_owned(), "metacontent".to_owned()])
        .collect();
    let schema: BTreeSet<String> = schema()["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(schema, documented);
}

#[test]
fn the_schema_carries_the_limits_of_the_settings() {
    let mut settings = Settings::defaults();
    settings.limits.max_text_parts = 7;
    settings.limits.max_text_chars = 11;
    let doc = document(&settings);
    let text = &doc["components"]["schemas"]["TextCommunication"]["properties"];
    assert_eq!(text["communication_parts"]["maxItems"], 7);
    assert_eq!(text["title"]["maxLength"], 11);
    assert_eq!(
        text["communication_parts"]["items"]["properties"]["body"]["maxLength"],
        11
    );
}

/// An integer id is one that fits 64 bits, as the schema's bounds say; a bigger one is refused.
#[test]
fn integer_ids_are_bounded_as_the_parser_reads_them() {
    let schema = schema();
    let id = &schema["properties"]["client_id"];
    assert_eq!(id["minimum"], json!(i64::MIN));
    assert_eq!(id["maximum"], json!(u64::MAX));
    let limits = Settings::defaults().limits;
    let read = |client_id: &str| {
        let bytes = format!(r#"{{"operator_id": "operator@email.com", "client_id": {client_id}}}"#);
        let defs = HashMap::<String, FieldType>::new();
        parse_text(&Body::parse(bytes.as_bytes()).unwrap(), &defs, &limits).map(|_| ())
    };
    read(&i64::MIN.to_string()).unwrap();
    read(&u64::MAX.to_string()).unwrap();
    assert!(read("18446744073709551616").is_err());
    assert!(read("-9223372036854775809").is_err());
}
