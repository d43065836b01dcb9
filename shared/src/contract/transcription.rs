//! The call's `transcription`: phrases with their speaker and times.

use serde_json_borrow::Value;

use super::text::storable;
use super::{field, FieldErrors, Limits};
use crate::domain::custom_fields::read_number;
use crate::domain::{Phrase, Role, Seconds};

pub(super) fn read_transcription(
    v: &Value,
    errors: &mut FieldErrors,
    limits: &Limits,
) -> Option<Vec<Phrase>> {
    let Some(items) = v.as_array() else {
        errors.push(
            &["transcription"],
            "must be an array of phrases {text, start_time, end_time, role}",
        );
        return None;
    };
    // Refused before reading a phrase: the work of a request must not grow with its body.
    if items.len() > limits.max_phrases {
        errors.push(
            &["transcription"],
            format!(
                "has {} phrases; at most {} are accepted (limits.max_phrases): send the call \
                 with fewer, longer phrases",
                items.len(),
                limits.max_phrases
            ),
        );
        return None;
    }
    let before = errors.count();
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
            Some(Value::Str(s)) => storable(s, limits.max_text_chars)
                .map_err(|e| errors.push(&["transcription", &idx, "text"], e))
                .ok(),
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
                text: text.to_owned(),
                start_time,
                end_time,
                role,
            });
        }
    }
    (errors.count() == before).then_some(phrases)
}
