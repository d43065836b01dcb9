use std::collections::HashMap;

use serde_json::{json, Value};

use super::{parse_text, Body, ParsedText};
use crate::config::Settings;
use crate::contract::FieldErrors;

fn parse(body: Value) -> Result<ParsedText, FieldErrors> {
    parse_text(
        &Body::from(&body),
        &HashMap::new(),
        &Settings::defaults().limits,
    )
}

fn fields(errors: FieldErrors) -> Vec<String> {
    errors.iter().map(|e| e.field.clone()).collect()
}

fn part(id: &str, role: &str, author: Value) -> Value {
    json!({"communication_part_id": id, "author": {"type": role, "id": author},
           "body": "x", "created_at": "2024-05-01T12:00:00Z"})
}

#[test]
fn without_operator_id_the_first_operator_author_is_the_operator() {
    let text = parse(json!({"communication_parts": [
        part("1", "client", json!("c-1")),
        part("2", "operator", Value::Null),
        part("3", "operator", json!("op-1")),
        part("4", "operator", json!("op-2")),
    ]}))
    .unwrap()
    .text;
    assert_eq!(text.operator_id.as_str(), "op-1");
    assert!(text.operator_from_author);
    assert_eq!(text.communication_type, "chat");

    let errors = parse(json!({"communication_parts": [part("1", "client", json!("c"))]}));
    assert_eq!(fields(errors.unwrap_err()), ["operator_id"]);
}

#[test]
fn communication_id_is_the_uid_and_both_at_once_are_refused() {
    let text = parse(json!({"operator_id": "op", "communication_id": "abc"}))
        .unwrap()
        .text;
    assert_eq!(text.storage_key().uid, "abc");
    let errors = parse(json!({"operator_id": "op", "communication_id": "abc", "uid": "abc"}));
    assert_eq!(fields(errors.unwrap_err()), ["communication_id"]);
}

#[test]
fn a_repeated_part_id_is_refused_at_the_repetition() {
    let errors = parse(json!({"operator_id": "op", "communication_parts": [
        part("1", "client", Value::Null),
        part("1", "operator", json!("op")),
    ]}));
    assert_eq!(
        fields(errors.unwrap_err()),
        ["communication_parts[1].communication_part_id"]
    );
}

#[test]
fn the_derived_key_stays_while_a_chat_grows() {
    let chat = |parts: Vec<Value>| {
        parse(json!({"operator_id": "op", "client_id": "c", "communication_parts": parts}))
            .unwrap()
            .text
            .storage_key()
    };
    let first = chat(vec![part("1", "client", Value::Null)]);
    assert!(first.derived);
    assert_eq!(
        first,
        chat(vec![
            part("1", "client", Value::Null),
            part("2", "operator", json!("op"))
        ])
    );
    assert_ne!(first, chat(vec![part("9", "client", Value::Null)]));
}
