//! The text communication's wire shape as a JSON Schema, written beside what
//! `shared::contract::parse_text` reads: the tests in `text_tests.rs` hold the two together
//! (every property is one the parser reads, every example parses, the required fields are the
//! parser's). The parser stays the authority; this tells integrators what it accepts, with the
//! deployment's own `[limits]`.

use serde_json::{json, Value};
use shared::config::Limits;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::fields::{custom_fields, direction, id, nps, required_id, text, NOT_BLANK, NO_NUL};

/// The text body in the handlers' annotations; its component is replaced by [`document`] when
/// the document is rendered, as the call's is.
pub struct TextCommunication;

/// Its component name: the type's, as utoipa names it.
pub const NAME: &str = "TextCommunication";

impl PartialSchema for TextCommunication {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().into()
    }
}

impl ToSchema for TextCommunication {}

/// Longest label (type, status, source, content type, email) the parser keeps.
const MAX_LABEL_CHARS: usize = 255;

/// An author type, as the parser compares it: trimmed, ASCII case ignored.
const ROLE: &str = "^\\s*([cC][lL][iI][eE][nN][tT]|[oO][pP][eE][rR][aA][tT][oO][rR])\\s*$";
const OPERATOR: &str = "^\\s*[oO][pP][eE][rR][aA][tT][oO][rR]\\s*$";

/// Present and not null: what the parser counts as sent.
fn sent(names: &[&str]) -> Value {
    let not_null: serde_json::Map<String, Value> = names
        .iter()
        .map(|n| ((*n).to_owned(), json!({"not": {"type": "null"}})))
        .collect();
    json!({"required": names, "properties": not_null})
}

/// The properties of the communication, in the contract's order.
pub fn document(limits: &Limits) -> Value {
    let (custom_fields, metacontent) = custom_fields(limits);
    let mut type_label = text(
        MAX_LABEL_CHARS,
        "chat, ticket, email, ... (stored lowercased); chat when absent",
    );
    type_label["pattern"] = json!(NOT_BLANK);
    let part = json!({
        "type": "object",
        "required": ["communication_part_id", "author", "body", "created_at"],
        "properties": {
            "communication_part_id": required_id("The part's id: a second post with it replaces \
                the part; two parts of one post must not share it"),
            "author": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {
                        "type": "string",
                        "pattern": ROLE,
                        "examples": ["client", "operator"],
                        "description": "\"client\" or \"operator\" (case is ignored).",
                    },
                    "id": id("The author's id; public client code sends null for a client"),
                },
            },
            "body": {
                "type": "string",
                "maxLength": limits.max_text_chars,
                "pattern": NO_NUL,
                "description": format!(
                    "The message, may be empty; at most {} characters (limits.max_text_chars).",
                    limits.max_text_chars
                ),
            },
            "created_at": {
                "type": "string",
                "format": "date-time",
                "description": "When it was written: ISO 8601 with a zone, as started_at.",
            },
            "content_type": text(MAX_LABEL_CHARS, "A free label, e.g. text/plain"),
        },
    });
    let operator_author = json!({
        "type": "array",
        "contains": {
            "type": "object",
            "required": ["author"],
            "properties": {"author": {
                "type": "object",
                "required": ["type", "id"],
                "properties": {
                    "type": {"type": "string", "pattern": OPERATOR},
                    "id": {"not": {"type": "null"}},
                },
            }},
        },
    });
    json!({
        "type": "object",
        "description": "One chat, ticket or email with its parts. Unknown fields are ignored; a \
            field sent as null counts as absent. The operator is operator_id or, without it, the \
            id of the first part whose author is an operator. A refused communication is \
            answered 422 with every field at fault.",
        "anyOf": [
            sent(&["operator_id"]),
            {"required": ["communication_parts"], "properties": {"communication_parts": operator_author}},
        ],
        "not": {"anyOf": [
            {"required": ["custom_fields", "metacontent"]},
            sent(&["uid", "communication_id"]),
        ]},
        "properties": {
            "operator_id": id("The operator's id in the customer's system, matched against an \
                operator's integration_uid; without it, the first operator author's id"),
            "uid": id("The communication's id in the customer's system; a second post with it \
                updates the communication"),
            "communication_id": id("Another name of uid (public client code sends it); send only \
                one of the two"),
            "communication_type": type_label,
            "started_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When it started: ISO 8601 with a zone, the calls' forms.",
            },
            "client_id": id("The client's id in the customer's system"),
            "title": text(limits.max_text_chars, "A title, e.g. a ticket's subject"),
            "source": text(MAX_LABEL_CHARS, "A free label: where it came from"),
            "status": text(MAX_LABEL_CHARS, "A free label (communication_status in the GET)"),
            "direction": direction(),
            "nps": nps("The communication's NPS value"),
            "client_feedback": text(limits.max_text_chars, "The client's feedback"),
            "email": text(MAX_LABEL_CHARS, "Free text: an address, or what public clients put \
                here (a name, a phone number)"),
            "custom_fields": custom_fields,
            "metacontent": metacontent,
            "communication_parts": {
                "type": ["array", "null"],
                "maxItems": limits.max_text_parts,
                "description": format!(
                    "The messages, at most {} (limits.max_text_parts). Upserted by \
                     communication_part_id: a post may carry the whole thread or only what is new.",
                    limits.max_text_parts
                ),
                "items": part,
            },
        },
    })
}

fn part(id: &str, author: Value, body: &str, created_at: &str) -> Value {
    json!({
        "communication_part_id": id,
        "author": author,
        "body": body,
        "created_at": created_at,
        "content_type": "text/plain",
    })
}

/// Bodies the documentation shows, as public client code sends them; each is accepted by the
/// parser (see the tests).
pub fn examples() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "chat",
            "A chat as a public Jivo connector posts it (.NET dates, a client author with a null id)",
            json!({
                "uid": "chat-42",
                "client_id": "58097722",
                "communication_type": "chat",
                "title": "Доставка",
                "source": "chat",
                "nps": 8,
                "client_feedback": 1,
                "custom_fields": {"chat_id": "c-1", "client_name": "Иван", "url": "https://shop.example/"},
                "status": "closed",
                "direction": "incoming",
                "started_at": "2024-05-01T12:00:00.1234567+05:00",
                "email": "+998901234567",
                "communication_parts": [
                    part("p-1", json!({"type": "client", "id": null}), "Здравствуйте, где заказ?",
                        "2024-05-01T12:00:05.1234567+05:00"),
                    part("p-2", json!({"type": "operator", "id": "operator@email.com"}), "Уточняю",
                        "2024-05-01T12:00:30.0000000+05:00"),
                ],
                "operator_id": "operator@email.com"
            }),
        ),
        (
            "ticket",
            "A ticket as a public exporter posts it: communication_id, the operator from an author",
            json!({
                "communication_id": "5b2cae5cb2682a976914c2a3",
                "communication_type": "ticket",
                "client_id": "user2_id",
                "direction": "incoming",
                "custom_fields": {"dialog_line": "first"},
                "communication_parts": [
                    {"author": {"id": "user007", "type": "client"}, "body": "Привет!",
                     "created_at": "2018-05-07T12:35:05+0000", "communication_part_id": "000000000000000000000000"},
                    {"author": {"id": "operator@email.com", "type": "operator"}, "body": "Здравствуй!",
                     "created_at": "2018-05-07T12:35:10+0000", "communication_part_id": "000000000000000000000001"}
                ]
            }),
        ),
        (
            "minimal",
            "Only the operator: a communication with no parts yet",
            json!({"operator_id": "operator@email.com"}),
        ),
    ]
}
