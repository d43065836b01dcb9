//! The call's wire shape as a JSON Schema, written beside what `shared::contract::parse_call`
//! reads: the tests in `tests.rs` hold the two together (every property is one the parser
//! reads, every example parses). The parser stays the authority; this tells integrators what
//! it accepts, with the deployment's own `[limits]`.

use serde_json::{json, Value};
use shared::config::Limits;

use super::fields::{custom_fields, direction, id, nps, required_id, text, NO_NUL, NUMERIC};
use utoipa::openapi::{ObjectBuilder, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// The call body in the handlers' annotations. utoipa's schema types cannot spell all of JSON
/// Schema 2020-12 (`not`, type lists with string rules), so the document's component is
/// replaced by [`document`] when it is rendered (`super::document`).
pub struct PhoneCall;

/// Its component name: the type's, as utoipa names it.
pub const NAME: &str = "PhoneCall";

impl PartialSchema for PhoneCall {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().into()
    }
}

impl ToSchema for PhoneCall {}

/// Longest `client_phone_number` the parser keeps.
const MAX_PHONE_CHARS: usize = 64;
/// Longest client name the parser keeps.
const MAX_NAME_CHARS: usize = 1000;

/// The properties of the call, in the contract's order.
pub fn document(limits: &Limits) -> Value {
    let seconds = |what: &str, null: bool| {
        let types = if null {
            json!(["number", "string", "null"])
        } else {
            json!(["number", "string"])
        };
        json!({
            "type": types,
            "minimum": 0,
            "pattern": NUMERIC,
            "description": format!("{what}, seconds, >= 0 (a numeric string is read as its number)."),
        })
    };
    let (custom_fields, metacontent) = custom_fields(limits);
    json!({
        "type": "object",
        "description": "One call. Unknown fields are ignored; a field sent as null counts as \
            absent. A refused call is answered 422 with every field at fault.",
        "required": ["operator_id", "started_at", "media_url"],
        "not": {"required": ["custom_fields", "metacontent"]},
        "properties": {
            "operator_id": required_id("The operator's id in the customer's system (email, AD id, \
                PBX extension), matched against an operator's integration_uid"),
            "started_at": {
                "type": "string",
                "format": "date-time",
                "description": "When the call started: ISO 8601 with a zone. RFC 3339, and the \
                    forms the Qolio page shows (2019-08-09T18:31:42+03, 2020-06-21T09:51:13.588Z+03).",
            },
            "media_url": {
                "type": "string",
                "format": "uri",
                "pattern": "^\\s*[hH][tT][tT][pP][sS]?://",
                "description": "Where the recording can be fetched: an absolute http(s) URL.",
            },
            "uid": id("The call's id in the customer's system; a second POST with it updates the call"),
            "client_phone_number": text(MAX_PHONE_CHARS, "The client's number"),
            "direction": direction(),
            "duration": seconds("Length of the call", true),
            "phone_call_chain_uid": id("The chain of calls this call belongs to"),
            "client": {
                "type": ["object", "null"],
                "properties": {
                    "id": id("The client's id; a client is not created twice within the organisation"),
                    "company_name": text(MAX_NAME_CHARS, "Company"),
                    "first_name": text(MAX_NAME_CHARS, "First name"),
                    "last_name": text(MAX_NAME_CHARS, "Last name"),
                },
            },
            "custom_fields": custom_fields,
            "metacontent": metacontent,
            "nps": nps("The call's NPS value"),
            "transcription": {
                "type": ["array", "null"],
                "maxItems": limits.max_phrases,
                "description": format!(
                    "The call's phrases, at most {} (limits.max_phrases); they may overlap.",
                    limits.max_phrases
                ),
                "items": {
                    "type": "object",
                    "required": ["text", "start_time", "end_time", "role"],
                    "properties": {
                        "text": {"type": "string", "maxLength": limits.max_text_chars, "pattern": NO_NUL},
                        "start_time": seconds("From the start of the call", false),
                        "end_time": seconds("From the start of the call, not before start_time", false),
                        "role": {"type": "string", "enum": ["operator", "client"]},
                    },
                },
            },
        },
    })
}

/// Bodies the documentation shows; each is accepted by the parser (see the tests).
pub fn examples() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "qolio",
            "The Qolio integration page's own curl body, verbatim",
            json!({
                "operator_id": "operator@email.com",
                "started_at": "2020-06-21T09:51:13.588Z+03",
                "direction": "incoming",
                "duration": 410.1,
                "client_phone_number": "+375332222453",
                "media_url": "https://file-examples.com/wp-content/uploads/2017/11/file_example_WAV_1MG.wav",
                "uid": "7b2331ca-adcb-4f15-811b-6b6cfddb2baf",
                "client": {
                    "id": "client@email.com",
                    "company_name": "Test Company",
                    "first_name": "John",
                    "last_name": "Doe"
                },
                "custom_fields": {
                    "opened_at": "2020-06-21T09:51:13.588Z",
                    "reopen_count": 5,
                    "topic": "Поддержка",
                    "sub-topic": "Возобновление доступа"
                }
            }),
        ),
        (
            "minimal",
            "Only the required fields",
            json!({
                "operator_id": "operator@email.com",
                "started_at": "2019-08-09T18:31:42+03",
                "media_url": "https://pbx.example.com/records/42.wav"
            }),
        ),
        (
            "transcription",
            "A call with its transcription",
            json!({
                "operator_id": "1042",
                "started_at": "2024-03-01T10:00:00Z",
                "media_url": "https://pbx.example.com/records/43.mp3",
                "uid": "43",
                "direction": "outcoming",
                "nps": 9,
                "transcription": [
                    {"text": "Добрый день", "start_time": 0, "end_time": 2.5, "role": "operator"},
                    {"text": "Здравствуйте", "start_time": 2.5, "end_time": 4, "role": "client"}
                ]
            }),
        ),
    ]
}
