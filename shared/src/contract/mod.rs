//! The wire contract: a JSON body in, a [`Call`] out, or every field that is wrong.
//!
//! What this accepts, the worker can store: besides the contract's own rules, everything
//! Postgres would refuse (a NUL character, a year it cannot hold, an index entry too long) is
//! refused here, and [`Limits`] bound what one call may hold.

mod client;
mod communication;
mod custom_fields;
mod errors;
mod text;
mod transcription;

use std::collections::HashMap;

use serde_json_borrow::{ObjectAsVec, Value};

pub use self::communication::{parse_text, ParsedText};
pub use self::errors::{FieldError, FieldErrors};
use self::text::{read_id, read_text};
pub use crate::config::Limits;
use crate::domain::custom_fields::read_number;
use crate::domain::time::parse_zoned;
use crate::domain::{Call, Direction, FieldType, MediaUrl, Seconds};

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
    limits: &Limits,
) -> Result<ParsedCall, FieldErrors> {
    let mut errors = FieldErrors::with_cap(limits.max_errors);
    let Some(obj) = body.0.as_object() else {
        errors.push(&[], "the body must be a JSON object with the call's fields");
        return Err(errors);
    };
    let mut p = Fields {
        obj,
        errors,
        limits,
    };

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
    let client = p.optional_with_path("client", client::read_client);
    let transcription = p.optional_with_path("transcription", |v, errors| {
        transcription::read_transcription(v, errors, limits)
    });
    let (custom_fields, new_fields) = custom_fields::read_custom_fields(&mut p, defs);

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
    limits: &'a Limits,
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

#[cfg(test)]
mod communication_tests;
#[cfg(test)]
mod tests;
