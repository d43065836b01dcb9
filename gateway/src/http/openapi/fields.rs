//! The schemas of the fields calls and texts share, as the contract's readers take them
//! (`read_id`, `read_text`, `read_custom_fields`, ...): one description for both bodies.

use serde_json::{json, Value};
use shared::config::Limits;
use shared::domain::text::MAX_ID_LEN;

/// Strings that are not blank once trimmed and hold no NUL (Postgres cannot store one).
pub(super) const NOT_BLANK: &str = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$";
/// Strings Postgres can store: no NUL.
pub(super) const NO_NUL: &str = "^[^\\u0000]*$";
/// Strings the parser reads as a number: what Rust's `f64` parser takes, trimmed.
pub(super) const NUMERIC: &str = "^\\s*[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?\\s*$";

/// An id, as `read_id` takes it: a string, or an integer that fits 64 bits.
pub(super) fn required_id(what: &str) -> Value {
    json!({
        "type": ["string", "integer"],
        "minLength": 1,
        "maxLength": MAX_ID_LEN,
        "pattern": NOT_BLANK,
        "minimum": i64::MIN,
        "maximum": u64::MAX,
        "description": format!("{what}: a string (trimmed, at most {MAX_ID_LEN} characters) or an integer."),
    })
}

/// An optional id: null counts as absent.
pub(super) fn id(what: &str) -> Value {
    let mut id = required_id(what);
    id["type"] = json!(["string", "integer", "null"]);
    id
}

/// An optional short text, as `read_text` takes it: a string, or a number kept as its text.
pub(super) fn text(max: usize, what: &str) -> Value {
    json!({
        "type": ["string", "number", "null"],
        "maxLength": max,
        "pattern": NO_NUL,
        "description": format!("{what}: at most {max} characters (a number is kept as its text)."),
    })
}

/// `direction`, as `Direction::parse` takes it.
pub(super) fn direction() -> Value {
    json!({
        "type": ["string", "null"],
        "enum": ["incoming", "outcoming", "outgoing", null],
        "description": "Into or out of the organisation; \"outgoing\" is read as \"outcoming\".",
    })
}

/// `nps`, read as a number.
pub(super) fn nps(what: &str) -> Value {
    json!({
        "type": ["number", "string", "null"],
        "pattern": NUMERIC,
        "description": format!("{what} (a numeric string is read as its number)."),
    })
}

/// `custom_fields` and `metacontent`, its old name, as `read_custom_fields` takes them.
pub(super) fn custom_fields(limits: &Limits) -> (Value, Value) {
    let custom_fields = json!({
        "type": ["object", "null"],
        "maxProperties": limits.max_custom_fields,
        "propertyNames": {"minLength": 1, "maxLength": limits.max_key_chars, "pattern": NOT_BLANK},
        "additionalProperties": {
            "description": "A simple value. Its type is the organisation's definition of the key \
                (string, number, string_array, string_url, number_array, datetime, boolean, \
                duration); a key seen for the first time is given the type its value suggests.",
            "anyOf": [
                {"type": "string", "maxLength": limits.max_text_chars, "pattern": NO_NUL},
                {"type": "number"},
                {"type": "boolean"},
                {"type": "null"},
                {"type": "array", "maxItems": limits.max_array_items,
                 "items": {"type": "string", "maxLength": limits.max_text_chars, "pattern": NO_NUL}},
                {"type": "array", "maxItems": limits.max_array_items, "items": {"type": "number"}},
            ],
        },
        "description": format!(
            "Key -> simple value outside the standard fields; at most {} keys (limits.max_custom_fields) \
             of at most {} characters (limits.max_key_chars).",
            limits.max_custom_fields, limits.max_key_chars
        ),
    });
    let mut metacontent = custom_fields.clone();
    metacontent["description"] =
        json!("The old name of custom_fields, read the same; send only one of the two.");
    (custom_fields, metacontent)
}
