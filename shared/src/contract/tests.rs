use super::*;
use crate::config::Settings;
use crate::domain::{Direction, Seconds};
use serde_json::{json, Value};

fn limits() -> Limits {
    Settings::defaults().limits
}

fn no_defs() -> HashMap<String, FieldType> {
    HashMap::new()
}

fn parse(body: &Value, defs: &HashMap<String, FieldType>) -> Result<ParsedCall, FieldErrors> {
    parse_call(&Body::from(body), defs, &limits())
}

fn errors_of(body: Value) -> Vec<(String, String)> {
    parse(&body, &no_defs())
        .unwrap_err()
        .iter()
        .map(|e| (e.field.clone(), e.message.clone()))
        .collect()
}

fn seed_example() -> Value {
    json!({
        "operator_id": "operator@email.com",
        "started_at": "2020-06-21T09:51:13.588Z+03",
        "direction": "incoming",
        "duration": 410.1,
        "client_phone_number": "+375332222453",
        "media_url": "https://file-examples.com/wp-content/uploads/2017/11/file_example_WAV_1MG.wav",
        "uid": "7b2331ca-adcb-4f15-811b-6b6cfddb2baf",
        "client": {"id": "client@email.com", "company_name": "Test Company", "first_name": "John", "last_name": "Doe"},
        "custom_fields": {"opened_at": "2020-06-21T09:51:13.588Z", "reopen_count": 5, "topic": "Поддержка", "sub-topic": "Возобновление доступа"}
    })
}

#[test]
fn the_pages_example_parses_and_registers_its_custom_fields() {
    let parsed = parse(&seed_example(), &no_defs()).unwrap();
    assert_eq!(parsed.call.operator_id.as_str(), "operator@email.com");
    assert_eq!(parsed.call.direction, Some(Direction::Incoming));
    assert_eq!(parsed.call.duration.map(Seconds::get), Some(410.1));
    let mut new: Vec<_> = parsed
        .new_fields
        .iter()
        .map(|(k, t)| (k.as_str(), *t))
        .collect();
    new.sort();
    assert_eq!(
        new,
        vec![
            ("opened_at", FieldType::Datetime),
            ("reopen_count", FieldType::Number),
            ("sub-topic", FieldType::String),
            ("topic", FieldType::String),
        ]
    );
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let errors = errors_of(json!({
        "started_at": "2020-06-21T09:51:13",
        "media_url": "ftp://x/y.wav",
        "direction": "sideways",
        "duration": -1,
        "client": {"id": ""},
        "transcription": [{"text": "hi", "start_time": 5, "end_time": 1, "role": "operator"}, {"role": "bot"}],
    }));
    let fields: Vec<_> = errors.iter().map(|(f, _)| f.as_str()).collect();
    for expected in [
        "operator_id",
        "started_at",
        "media_url",
        "direction",
        "duration",
        "client.id",
        "transcription[0].end_time",
        "transcription[1].text",
        "transcription[1].start_time",
        "transcription[1].role",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {fields:?}"
        );
    }
    let started = errors.iter().find(|(f, _)| f == "started_at").unwrap();
    assert!(started.1.contains("2019-08-09T18:31:42+03"));
}

#[test]
fn pointers_name_nested_fields() {
    let errs = parse(&json!({"client": {"id": 1.5}}), &no_defs()).unwrap_err();
    let e = errs.iter().find(|e| e.field == "client.id").unwrap();
    assert_eq!(e.pointer, "/client/id");
}

#[test]
fn metacontent_is_an_alias_of_custom_fields() {
    let mut body = seed_example();
    let fields = body
        .as_object_mut()
        .unwrap()
        .remove("custom_fields")
        .unwrap();
    body["metacontent"] = fields;
    let parsed = parse(&body, &no_defs()).unwrap();
    assert_eq!(
        serde_json::to_value(parsed.call.custom_fields.stored()).unwrap()["reopen_count"],
        json!(5)
    );
    body["custom_fields"] = json!({});
    assert_eq!(errors_of(body)[0].0, "metacontent");
}

#[test]
fn outgoing_means_outcoming() {
    let mut body = seed_example();
    body["direction"] = json!("outgoing");
    assert_eq!(
        parse(&body, &no_defs()).unwrap().call.direction,
        Some(Direction::Outcoming)
    );
}

#[test]
fn custom_values_are_checked_against_their_definition() {
    let defs = HashMap::from([
        ("reopen_count".to_owned(), FieldType::Duration),
        ("topic".to_owned(), FieldType::Number),
    ]);
    let errs = parse(&seed_example(), &defs).unwrap_err();
    let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["custom_fields.topic"]);
}

#[test]
fn a_call_without_uid_gets_a_stable_derived_key() {
    let mut body = seed_example();
    body.as_object_mut().unwrap().remove("uid");
    let a = parse(&body, &no_defs()).unwrap().call.storage_key();
    body["duration"] = json!(1);
    let b = parse(&body, &no_defs()).unwrap().call.storage_key();
    assert!(a.derived);
    assert_eq!(a, b);
    body["media_url"] = json!("https://example.org/other.wav");
    assert_ne!(a, parse(&body, &no_defs()).unwrap().call.storage_key());
}

#[test]
fn a_body_that_is_not_an_object_is_refused() {
    assert_eq!(errors_of(json!([1, 2])).len(), 1);
}

#[test]
fn of_a_key_sent_twice_the_last_counts_as_it_did_with_a_map() {
    let bytes = br#"{
        "operator_id": "first@x.com", "operator_id": "op\u0040x.com",
        "started_at": "2024-03-01T10:00:00+03",
        "media_url": "https://recordings.example/x.wav",
        "custom_fields": {"topic": {}, "b": 1, "topic": "billing", "a": "x"}
    }"#;
    let parsed = parse_call(&Body::parse(bytes).unwrap(), &no_defs(), &limits()).unwrap();
    assert_eq!(parsed.call.operator_id.as_str(), "op@x.com");
    assert_eq!(
        serde_json::to_value(parsed.call.custom_fields.stored()).unwrap(),
        json!({"a": "x", "b": 1, "topic": "billing"})
    );
    let new: Vec<_> = parsed.new_fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(new, ["a", "b", "topic"]);
}

#[test]
fn numbers_sent_for_text_are_written_as_json_writes_them() {
    let mut body = seed_example();
    body["client_phone_number"] = json!(1e20);
    let parsed = parse(&body, &no_defs()).unwrap();
    assert_eq!(parsed.call.client_phone_number.as_deref(), Some("1e+20"));
}

#[test]
fn a_nul_character_is_refused_wherever_it_is() {
    let mut body = seed_example();
    body["client"]["first_name"] = json!("Jo\u{0}hn");
    body["uid"] = json!("call\u{0}1");
    body["transcription"] =
        json!([{"text": "a\u{0}", "start_time": 0, "end_time": 1, "role": "client"}]);
    body["custom_fields"] = json!({"topic": "x\u{0}", "k\u{0}ey": 1, "langs": ["ru", "\u{0}"]});
    let errors = errors_of(body);
    let fields: Vec<_> = errors.iter().map(|(f, _)| f.as_str()).collect();
    for expected in [
        "client.first_name",
        "uid",
        "transcription[0].text",
        "custom_fields.topic",
        "custom_fields.k\u{0}ey",
        "custom_fields.langs",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected:?} missing from {fields:?}"
        );
    }
    assert!(
        errors.iter().all(|(_, m)| m.contains("\\u0000")),
        "{errors:?}"
    );
}

#[test]
fn limits_refuse_oversized_parts_at_once() {
    let limits = Limits {
        max_phrases: 2,
        max_text_parts: 2,
        max_custom_fields: 2,
        max_key_chars: 3,
        max_text_chars: 4,
        max_array_items: 2,
        ..limits()
    };
    let phrase = json!({"text": "hi", "start_time": 0, "end_time": 1, "role": "client"});
    let mut body = seed_example();
    body["transcription"] = json!([phrase, phrase, phrase]);
    body["custom_fields"] = json!({"a": 1, "b": 2, "c": 3});
    let errors = parse_call(&Body::from(&body), &no_defs(), &limits).unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["transcription", "custom_fields"]);
    assert!(errors
        .iter()
        .next()
        .unwrap()
        .message
        .contains("limits.max_phrases"));

    body["transcription"] =
        json!([{"text": "hello", "start_time": 0, "end_time": 1, "role": "client"}]);
    body["custom_fields"] = json!({"long": 1, "s": "hello", "arr": [1, 2, 3]});
    let limits = Limits {
        max_custom_fields: 3,
        ..limits
    };
    let errors = parse_call(&Body::from(&body), &no_defs(), &limits).unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "transcription[0].text",
            "custom_fields.arr",
            "custom_fields.long",
            "custom_fields.s"
        ]
    );
}

#[test]
fn an_answer_lists_at_most_max_errors_and_counts_the_rest() {
    let phrases: Vec<Value> = (0..1000).map(|_| json!({})).collect();
    let mut body = seed_example();
    body["transcription"] = json!(phrases);
    let errors = parse(&body, &no_defs()).unwrap_err();
    assert_eq!(errors.iter().count(), limits().max_errors);
    assert_eq!(errors.count(), 4000);
}

#[test]
fn a_start_postgres_cannot_store_is_refused() {
    let mut body = seed_example();
    body["started_at"] = json!("-100000-01-01T00:00:00Z");
    assert_eq!(errors_of(body)[0].0, "started_at");
}
