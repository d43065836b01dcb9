//! The wire contract: a JSON body in, a [`Call`] out, or every field that is wrong.

use std::collections::HashMap;

use serde::Serialize;
use serde_json_borrow::{ObjectAsVec, Value};

use crate::domain::custom_fields::read_number;
use crate::domain::time::parse_zoned;
use crate::domain::{
    Call, Client, CustomFields, CustomValue, Direction, ExternalId, FieldType, MediaUrl, Phrase,
    Role, Seconds,
};

const MAX_TEXT_LEN: usize = 1000;

/// One field that failed: its dotted name (`client.id`), its JSON pointer and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub pointer: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// `path` is the field's segments: `["client", "id"]`, `["transcription", "2", "role"]`.
    pub fn push(&mut self, path: &[&str], message: impl Into<String>) {
        let field = path
            .iter()
            .enumerate()
            .map(|(i, seg)| match seg.parse::<usize>() {
                Ok(index) if i > 0 => format!("[{index}]"),
                _ if i > 0 => format!(".{seg}"),
                _ => (*seg).to_owned(),
            })
            .collect();
        let pointer = path
            .iter()
            .map(|seg| format!("/{}", seg.replace('~', "~0").replace('/', "~1")))
            .collect();
        self.0.push(FieldError {
            field,
            pointer,
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<_> = self
            .0
            .iter()
            .map(|e| format!("{} {}", e.field, e.message))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// The organisation's custom field types, as far as they are known.
pub trait FieldDefinitions {
    fn field_type(&self, key: &str) -> Option<FieldType>;
}

impl FieldDefinitions for HashMap<String, FieldType> {
    fn field_type(&self, key: &str) -> Option<FieldType> {
        self.get(key).copied()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCall {
    pub call: Call,
    /// Keys no definition knew yet, with the type inferred from their value: to register.
    pub new_fields: Vec<(String, FieldType)>,
}

/// A request body read as JSON, its strings borrowed from the request's bytes where they hold
/// no escapes: an owned `serde_json::Value`, with a map node and a `String` for every key and
/// string, was a fifth of a gateway's instructions a call.
pub struct Body<'a>(Value<'a>);

impl<'a> Body<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes).map(Self)
    }
}

impl<'a> From<&'a serde_json::Value> for Body<'a> {
    fn from(value: &'a serde_json::Value) -> Self {
        Self(Value::from(value))
    }
}

pub fn parse_call(
    body: &Body<'_>,
    defs: &impl FieldDefinitions,
) -> Result<ParsedCall, FieldErrors> {
    let mut errors = FieldErrors::default();
    let Some(obj) = body.0.as_object() else {
        errors.push(&[], "the body must be a JSON object with the call's fields");
        return Err(errors);
    };
    let mut p = Fields { obj, errors };

    let operator_id = p.required("operator_id", read_id);
    let started_at = p.required("started_at", |v| match v.as_str() {
        Some(s) => parse_zoned(s).map_err(|e| e.to_string()),
        None => {
            Err("must be a string with an ISO 8601 date-time, e.g. 2019-08-09T18:31:42+03".into())
        }
    });
    let media_url = p.required("media_url", |v| {
        v.as_str()
            .ok_or("must be a string")
            .and_then(MediaUrl::parse)
            .map_err(str::to_owned)
    });
    let uid = p.optional("uid", read_id);
    let client_phone_number = p.optional("client_phone_number", |v| read_text(v, 64));
    let direction = p.optional("direction", |v| {
        v.as_str().and_then(Direction::parse).ok_or_else(|| {
            "must be \"incoming\" or \"outcoming\" (\"outgoing\" is read as \"outcoming\")".into()
        })
    });
    let duration = p.optional("duration", |v| {
        read_number(v)
            .and_then(Seconds::new)
            .ok_or_else(|| "must be a number of seconds, >= 0".into())
    });
    let phone_call_chain_uid = p.optional("phone_call_chain_uid", read_id);
    let nps = p.optional("nps", |v| {
        read_number(v).ok_or_else(|| "must be a number".into())
    });
    let client = p.optional_with_path("client", read_client);
    let transcription = p.optional_with_path("transcription", read_transcription);
    let (custom_fields, new_fields) = read_custom_fields(&mut p, defs);

    let Fields { mut errors, .. } = p;
    match (operator_id, started_at, media_url) {
        (Some(operator_id), Some(started_at), Some(media_url)) if errors.is_empty() => {
            Ok(ParsedCall {
                call: Call {
                    operator_id,
                    started_at,
                    media_url,
                    uid: uid.flatten(),
                    client_phone_number: client_phone_number.flatten(),
                    direction: direction.flatten(),
                    duration: duration.flatten(),
                    phone_call_chain_uid: phone_call_chain_uid.flatten(),
                    client: client.flatten(),
                    custom_fields,
                    nps: nps.flatten(),
                    transcription: transcription.flatten(),
                },
                new_fields,
            })
        }
        _ => {
            if errors.is_empty() {
                errors.push(&[], "the call is incomplete");
            }
            Err(errors)
        }
    }
}

/// Reads top-level fields, collecting errors instead of stopping at the first.
struct Fields<'a> {
    obj: &'a ObjectAsVec<'a>,
    errors: FieldErrors,
}

/// The value of `key`; of a key sent twice, the last, as JSON parsers that keep a map do.
fn field<'v>(obj: &'v ObjectAsVec<'_>, key: &str) -> Option<&'v Value<'v>> {
    obj.as_vec()
        .iter()
        .rev()
        .find(|(k, _)| **k == *key)
        .map(|(_, v)| v)
}

impl Fields<'_> {
    fn required<T>(
        &mut self,
        key: &str,
        read: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        match field(self.obj, key) {
            None | Some(Value::Null) => {
                self.errors.push(&[key], "is required");
                None
            }
            Some(v) => read(v).map_err(|e| self.errors.push(&[key], e)).ok(),
        }
    }

    /// `Some(None)` when absent or null, `None` when present but invalid.
    fn optional<T>(
        &mut self,
        key: &str,
        read: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match field(self.obj, key) {
            None | Some(Value::Null) => Some(None),
            Some(v) => read(v)
                .map(Some)
                .map_err(|e| self.errors.push(&[key], e))
                .ok(),
        }
    }

    /// Like `optional`, for nested values that report errors under their own paths.
    fn optional_with_path<T>(
        &mut self,
        key: &str,
        read: impl FnOnce(&Value, &mut FieldErrors) -> Option<T>,
    ) -> Option<Option<T>> {
        match field(self.obj, key) {
            None | Some(Value::Null) => Some(None),
            Some(v) => read(v, &mut self.errors).map(Some),
        }
    }
}

fn read_id(v: &Value) -> Result<ExternalId, String> {
    match v {
        Value::Str(s) => ExternalId::parse(s).map_err(|e| e.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            ExternalId::parse(&n.to_string()).map_err(|e| e.to_string())
        }
        _ => Err("must be a string".into()),
    }
}

fn read_text(v: &Value, max: usize) -> Result<String, String> {
    match v {
        Value::Str(s) if s.chars().count() <= max => Ok(s.trim().to_owned()),
        Value::Str(_) => Err(format!("must be at most {max} characters")),
        // serde_json's form (1e+20), which stored calls have always held; Rust's own is
        // 100000000000000000000.
        Value::Number(n) => Ok(serde_json::Number::from(*n).to_string()),
        _ => Err("must be a string".into()),
    }
}

fn read_client(v: &Value, errors: &mut FieldErrors) -> Option<Client> {
    let Some(obj) = v.as_object() else {
        errors.push(
            &["client"],
            "must be an object with id, company_name, first_name, last_name",
        );
        return None;
    };
    let before = errors.0.len();
    let mut text = |key: &str| match field(obj, key) {
        None | Some(Value::Null) => None,
        Some(v) => read_text(v, MAX_TEXT_LEN)
            .map_err(|e| errors.push(&["client", key], e))
            .ok(),
    };
    let company_name = text("company_name");
    let first_name = text("first_name");
    let last_name = text("last_name");
    let id = match field(obj, "id") {
        None | Some(Value::Null) => None,
        Some(v) => read_id(v)
            .map_err(|e| errors.push(&["client", "id"], e))
            .ok(),
    };
    (errors.0.len() == before).then_some(Client {
        id,
        company_name,
        first_name,
        last_name,
    })
}

fn read_transcription(v: &Value, errors: &mut FieldErrors) -> Option<Vec<Phrase>> {
    let Some(items) = v.as_array() else {
        errors.push(
            &["transcription"],
            "must be an array of phrases {text, start_time, end_time, role}",
        );
        return None;
    };
    let before = errors.0.len();
    let mut phrases = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let idx = i.to_string();
        let Some(obj) = item.as_object() else {
            errors.push(
                &["transcription", &idx],
                "must be an object {text, start_time, end_time, role}",
            );
            continue;
        };
        let text = match field(obj, "text") {
            Some(Value::Str(s)) => Some(s.to_string()),
            None | Some(Value::Null) => {
                errors.push(&["transcription", &idx, "text"], "is required");
                None
            }
            Some(_) => {
                errors.push(&["transcription", &idx, "text"], "must be a string");
                None
            }
        };
        let mut seconds =
            |key: &str| match field(obj, key).map(|v| read_number(v).and_then(Seconds::new)) {
                Some(Some(s)) => Some(s),
                None => {
                    errors.push(
                        &["transcription", &idx, key],
                        "is required (seconds from the start of the call)",
                    );
                    None
                }
                Some(None) => {
                    errors.push(
                        &["transcription", &idx, key],
                        "must be a number of seconds, >= 0",
                    );
                    None
                }
            };
        let start_time = seconds("start_time");
        let end_time = seconds("end_time");
        let role = match field(obj, "role")
            .and_then(Value::as_str)
            .map(|r| r.trim().to_ascii_lowercase())
        {
            Some(r) if r == "operator" => Some(Role::Operator),
            Some(r) if r == "client" => Some(Role::Client),
            _ => {
                errors.push(
                    &["transcription", &idx, "role"],
                    "must be \"operator\" or \"client\"",
                );
                None
            }
        };
        if let (Some(s), Some(e)) = (start_time, end_time) {
            if e < s {
                errors.push(
                    &["transcription", &idx, "end_time"],
                    "must not be before start_time",
                );
                continue;
            }
        }
        if let (Some(text), Some(start_time), Some(end_time), Some(role)) =
            (text, start_time, end_time, role)
        {
            phrases.push(Phrase {
                text,
                start_time,
                end_time,
                role,
            });
        }
    }
    (errors.0.len() == before).then_some(phrases)
}

fn read_custom_fields(
    p: &mut Fields<'_>,
    defs: &impl FieldDefinitions,
) -> (CustomFields, Vec<(String, FieldType)>) {
    let mut fields = CustomFields::default();
    let mut new_fields = Vec::new();
    let (key, value) = match (field(p.obj, "custom_fields"), field(p.obj, "metacontent")) {
        (Some(_), Some(_)) => {
            p.errors.push(
                &["metacontent"],
                "is the old name of custom_fields; send only one of them",
            );
            return (fields, new_fields);
        }
        (Some(v), None) => ("custom_fields", v),
        (None, Some(v)) => ("metacontent", v),
        (None, None) => return (fields, new_fields),
    };
    let obj = match value {
        Value::Null => return (fields, new_fields),
        Value::Object(obj) => obj,
        _ => {
            p.errors
                .push(&[key], "must be an object of key -> simple value");
            return (fields, new_fields);
        }
    };
    for (name, v) in by_key(obj) {
        if name.trim().is_empty() {
            p.errors.push(&[key, name], "keys must not be empty");
            continue;
        }
        let ty = match defs.field_type(name) {
            Some(ty) => ty,
            None if v.is_null() => {
                fields.insert(name.to_owned(), CustomValue::Null);
                continue;
            }
            None => match FieldType::infer(v) {
                Some(ty) => {
                    new_fields.push((name.to_owned(), ty));
                    ty
                }
                None => {
                    p.errors.push(
                        &[key, name],
                        "must be a simple value: string, number, boolean, ISO 8601 date-time, URL, or an array of strings or of numbers",
                    );
                    continue;
                }
            },
        };
        match CustomValue::read(ty, v) {
            Ok(value) => fields.insert(name.to_owned(), value),
            Err(e) => p.errors.push(&[key, name], e),
        }
    }
    (fields, new_fields)
}

/// An object's entries in key order, a key sent twice once with its last value: the order and
/// the outcome a map-backed JSON value gave, so errors and new fields do not depend on how
/// the sender ordered its keys.
fn by_key<'v>(obj: &'v ObjectAsVec<'_>) -> Vec<(&'v str, &'v Value<'v>)> {
    let mut entries: Vec<(&str, &Value)> = obj.iter().collect();
    // Stable, so of equal keys the last sent comes last; it overwrites the one kept.
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            *kept = *later;
        }
        same
    });
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn no_defs() -> HashMap<String, FieldType> {
        HashMap::new()
    }

    fn parse(body: &Value, defs: &HashMap<String, FieldType>) -> Result<ParsedCall, FieldErrors> {
        parse_call(&Body::from(body), defs)
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
        let parsed = parse_call(&Body::parse(bytes).unwrap(), &no_defs()).unwrap();
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
}
