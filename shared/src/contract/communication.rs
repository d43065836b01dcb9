//! The body of `POST .../text`: a chat, ticket or email with its parts, or every field that
//! is wrong. Read with the calls' rules wherever a field is the same (ids, times, custom
//! fields, direction, nps).

use std::collections::HashSet;

use serde_json_borrow::Value;

use super::custom_fields::read_custom_fields;
use super::text::{read_id, read_text, storable};
use super::{field, Body, FieldDefinitions, FieldErrors, Fields, Limits};
use crate::domain::custom_fields::read_number;
use crate::domain::time::parse_zoned;
use crate::domain::{Author, Direction, ExternalId, FieldType, Role, TextCommunication, TextPart};

/// Short labels (type, status, source, content type): longer is no label.
const MAX_LABEL_CHARS: usize = 255;
/// Without `communication_type`, what public client code sends most.
const DEFAULT_TYPE: &str = "chat";

#[derive(Debug, Clone, PartialEq)]
pub struct ParsedText {
    pub text: TextCommunication,
    /// Keys no definition knew yet, with the type inferred from their value: to register.
    pub new_fields: Vec<(String, FieldType)>,
}

pub fn parse_text(
    body: &Body<'_>,
    defs: &impl FieldDefinitions,
    limits: &Limits,
) -> Result<ParsedText, FieldErrors> {
    let mut errors = FieldErrors::with_cap(limits.max_errors);
    let Some(obj) = body.0.as_object() else {
        errors.push(
            &[],
            "the body must be a JSON object with the communication's fields",
        );
        return Err(errors);
    };
    let mut p = Fields {
        obj,
        errors,
        limits,
    };
    let operator_id = p.optional("operator_id", read_id);
    let started_at = p.optional("started_at", |v| match v.as_str() {
        Some(s) => parse_zoned(s).map_err(|e| e.to_string()),
        None => {
            Err("must be a string with an ISO 8601 date-time, e.g. 2019-08-09T18:31:42+03".into())
        }
    });
    let uid = read_uid(&mut p);
    let communication_type = p.optional("communication_type", |v| {
        let label = read_label(v)?;
        if label.is_empty() {
            Err("must not be empty, e.g. \"chat\", \"ticket\" or \"email\"".into())
        } else {
            Ok(label.to_ascii_lowercase())
        }
    });
    let client_id = p.optional("client_id", read_id);
    let title = p.optional("title", |v| read_text(v, limits.max_text_chars));
    let source = p.optional("source", read_label);
    let status = p.optional("status", read_label);
    let direction = p.optional("direction", |v| {
        v.as_str().and_then(Direction::parse).ok_or_else(|| {
            "must be \"incoming\" or \"outcoming\" (\"outgoing\" is read as \"outcoming\")".into()
        })
    });
    let nps = p.optional("nps", |v| {
        read_number(v).ok_or_else(|| "must be a number".into())
    });
    let client_feedback = p.optional("client_feedback", |v| read_text(v, limits.max_text_chars));
    let email = p.optional("email", |v| read_text(v, MAX_LABEL_CHARS));
    let parts = p.optional_with_path("communication_parts", |v, errors| {
        read_parts(v, errors, limits)
    });
    let (custom_fields, new_fields) = read_custom_fields(&mut p, defs);

    let Fields { mut errors, .. } = p;
    let parts = parts.map(Option::unwrap_or_default);
    let operator = match (operator_id, &parts) {
        (Some(Some(id)), _) => Some((id, false)),
        (Some(None), Some(parts)) => match first_operator(parts) {
            Some(id) => Some((id, true)),
            None => {
                errors.push(
                    &["operator_id"],
                    "is required, unless a part of communication_parts has an author \
                     {\"type\": \"operator\", \"id\": ...}",
                );
                None
            }
        },
        _ => None,
    };
    match (operator, parts) {
        (Some((operator_id, operator_from_author)), Some(parts)) if errors.is_empty() => {
            Ok(ParsedText {
                text: TextCommunication {
                    operator_id,
                    operator_from_author,
                    uid: uid.flatten(),
                    communication_type: communication_type
                        .flatten()
                        .unwrap_or_else(|| DEFAULT_TYPE.to_owned()),
                    started_at: started_at.flatten(),
                    client_id: client_id.flatten(),
                    title: title.flatten(),
                    source: source.flatten(),
                    status: status.flatten(),
                    direction: direction.flatten(),
                    nps: nps.flatten(),
                    client_feedback: client_feedback.flatten(),
                    email: email.flatten(),
                    custom_fields,
                    parts,
                },
                new_fields,
            })
        }
        _ => {
            if errors.is_empty() {
                errors.push(&[], "the communication is incomplete");
            }
            Err(errors)
        }
    }
}

/// `uid`; public client code sends `communication_id` for the same thing.
fn read_uid(p: &mut Fields<'_>) -> Option<Option<ExternalId>> {
    if field(p.obj, "uid").is_some_and(|v| !v.is_null())
        && field(p.obj, "communication_id").is_some_and(|v| !v.is_null())
    {
        p.errors.push(
            &["communication_id"],
            "is another name of uid; send only one of them",
        );
        return None;
    }
    match p.optional("uid", read_id) {
        Some(None) => p.optional("communication_id", read_id),
        other => other,
    }
}

fn read_label(v: &Value) -> Result<String, String> {
    read_text(v, MAX_LABEL_CHARS)
}

fn first_operator(parts: &[TextPart]) -> Option<ExternalId> {
    parts
        .iter()
        .find(|p| p.author.role == Role::Operator && p.author.id.is_some())
        .and_then(|p| p.author.id.clone())
}

fn read_parts(v: &Value, errors: &mut FieldErrors, limits: &Limits) -> Option<Vec<TextPart>> {
    const KEY: &str = "communication_parts";
    let Some(items) = v.as_array() else {
        errors.push(
            &[KEY],
            "must be an array of parts {communication_part_id, author, body, created_at}",
        );
        return None;
    };
    // Refused before reading a part: the work of a request must not grow with its body.
    if items.len() > limits.max_text_parts {
        errors.push(
            &[KEY],
            format!(
                "has {} parts; at most {} are accepted (limits.max_text_parts)",
                items.len(),
                limits.max_text_parts
            ),
        );
        return None;
    }
    let before = errors.count();
    let mut seen = HashSet::with_capacity(items.len());
    let mut parts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let idx = i.to_string();
        let at = |key: &'static str| [KEY, idx.as_str(), key];
        let Some(obj) = item.as_object() else {
            errors.push(
                &[KEY, &idx],
                "must be an object {communication_part_id, author, body, created_at}",
            );
            continue;
        };
        let required = |key: &'static str, errors: &mut FieldErrors| match field(obj, key) {
            None | Some(Value::Null) => {
                errors.push(&at(key), "is required");
                None
            }
            Some(v) => Some(v),
        };
        let id = required("communication_part_id", errors).and_then(|v| {
            read_id(v)
                .map_err(|e| errors.push(&at("communication_part_id"), e))
                .ok()
        });
        if let Some(id) = &id {
            if !seen.insert(id.clone()) {
                errors.push(
                    &at("communication_part_id"),
                    format!("{id:?} is repeated: each part of one post must have its own id"),
                );
            }
        }
        let author = required("author", errors).and_then(|v| read_author(v, &at("author"), errors));
        let body = required("body", errors).and_then(|v| match v {
            Value::Str(s) => storable(s, limits.max_text_chars)
                .map(str::to_owned)
                .map_err(|e| errors.push(&at("body"), e))
                .ok(),
            _ => {
                errors.push(&at("body"), "must be a string");
                None
            }
        });
        let created_at = required("created_at", errors).and_then(|v| {
            let read = match v.as_str() {
                Some(s) => parse_zoned(s).map_err(|e| e.to_string()),
                None => Err(
                    "must be a string with an ISO 8601 date-time, e.g. 2019-08-09T18:31:42+03"
                        .into(),
                ),
            };
            read.map_err(|e| errors.push(&at("created_at"), e)).ok()
        });
        let content_type = match field(obj, "content_type") {
            None | Some(Value::Null) => Some(None),
            Some(v) => read_label(v)
                .map(Some)
                .map_err(|e| errors.push(&at("content_type"), e))
                .ok(),
        };
        if let (Some(id), Some(author), Some(body), Some(created_at), Some(content_type)) =
            (id, author, body, created_at, content_type)
        {
            parts.push(TextPart {
                id,
                author,
                body,
                created_at,
                content_type,
            });
        }
    }
    (errors.count() == before).then_some(parts)
}

fn read_author(v: &Value, path: &[&str], errors: &mut FieldErrors) -> Option<Author> {
    let Some(obj) = v.as_object() else {
        errors.push(
            path,
            "must be an object {\"type\": \"client\" or \"operator\", \"id\": ...}",
        );
        return None;
    };
    let with = |key: &'static str| {
        let mut p = path.to_vec();
        p.push(key);
        p
    };
    let role = match field(obj, "type").and_then(|v| v.as_str()) {
        Some(s) if s.trim().eq_ignore_ascii_case("client") => Some(Role::Client),
        Some(s) if s.trim().eq_ignore_ascii_case("operator") => Some(Role::Operator),
        _ => {
            errors.push(&with("type"), "must be \"client\" or \"operator\"");
            None
        }
    };
    let id = match field(obj, "id") {
        None | Some(Value::Null) => Some(None),
        Some(v) => read_id(v)
            .map(Some)
            .map_err(|e| errors.push(&with("id"), e))
            .ok(),
    };
    Some(Author {
        role: role?,
        id: id?,
    })
}
