//! A text communication (chat, ticket, email...) as the contract defines it, once parsed.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::call::{CallKey, Direction, Role};
use super::custom_fields::CustomFields;
use super::text::ExternalId;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextCommunication {
    /// `operator_id`, or the first operator-type author's id when the body had none: parsing
    /// refuses a communication with neither.
    pub operator_id: ExternalId,
    /// Whether `operator_id` came from an author rather than the body's own field.
    pub operator_from_author: bool,
    pub uid: Option<ExternalId>,
    pub communication_type: String,
    pub started_at: Option<DateTime<Utc>>,
    pub client_id: Option<ExternalId>,
    pub title: Option<String>,
    pub source: Option<String>,
    pub status: Option<String>,
    pub direction: Option<Direction>,
    pub nps: Option<f64>,
    /// A number or a string in public client code: kept as its text.
    pub client_feedback: Option<String>,
    /// Free text: clients put a name or a phone number here too.
    pub email: Option<String>,
    pub custom_fields: CustomFields,
    /// In the order sent; no two share a `communication_part_id`.
    pub parts: Vec<TextPart>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextPart {
    pub id: ExternalId,
    pub author: Author,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    #[serde(rename = "type")]
    pub role: Role,
    /// Public client code sends `null` for a client it knows no id of.
    pub id: Option<ExternalId>,
}

impl TextCommunication {
    /// Its `uid`, or a key derived from what stays the same while a chat grows (operator,
    /// start, client, type, first part), so a client re-posting a growing chat without a
    /// `uid` updates it instead of adding another.
    pub fn storage_key(&self) -> CallKey {
        if let Some(uid) = &self.uid {
            return CallKey {
                uid: uid.as_str().to_owned(),
                derived: false,
            };
        }
        let mut hash = Sha256::new();
        hash.update("text");
        for part in [
            Some(self.operator_id.as_str().to_owned()),
            self.started_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Nanos, true)),
            self.client_id.as_ref().map(|c| c.as_str().to_owned()),
            Some(self.communication_type.clone()),
            self.parts.first().map(|p| p.id.as_str().to_owned()),
        ] {
            hash.update([0]);
            hash.update(part.unwrap_or_default());
        }
        let digest = hex::encode(&hash.finalize()[..16]);
        CallKey {
            uid: format!("derived:{digest}"),
            derived: true,
        }
    }
}
