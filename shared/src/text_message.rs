//! A text communication on the queue: it travels with the calls, on their work queue, through
//! their retries, dead letters and replays, as `{"version": "1", "kind": "text", ..., "text":
//! {...}}`. A worker that knows only calls finds no `call` in it and dead-letters it as
//! undecodable, replayable once a worker that handles texts is deployed, rather than
//! guessing. A gateway groups texts with the calls that arrive beside them, each element
//! byte for byte the text's own message, as calls are.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::TextCommunication;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextMessage {
    version: Version,
    kind: Kind,
    /// Time-ordered (UUIDv7): with `received_at` it orders two versions of one communication.
    pub ingest_id: Uuid,
    pub integration_id: Uuid,
    pub organisation_id: Uuid,
    #[serde(with = "crate::domain::wire_time")]
    pub received_at: DateTime<Utc>,
    pub text: TextCommunication,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Version {
    #[serde(rename = "1")]
    V1,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Text,
}

impl TextMessage {
    pub fn new(
        ingest_id: Uuid,
        integration_id: Uuid,
        organisation_id: Uuid,
        received_at: DateTime<Utc>,
        text: TextCommunication,
    ) -> Self {
        Self {
            version: Version::V1,
            kind: Kind::Text,
            ingest_id,
            integration_id,
            organisation_id,
            received_at,
            text,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        sonic_rs::to_vec(self).expect("a text message always serialises")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, sonic_rs::Error> {
        sonic_rs::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::message::CallMessage;

    fn message() -> TextMessage {
        let body = serde_json::json!({
            "operator_id": "op-1",
            "communication_type": "chat",
            "communication_parts": [{
                "communication_part_id": "p-1",
                "author": {"type": "client", "id": null},
                "body": "Здравствуйте",
                "created_at": "2024-03-01T10:00:00+03",
            }],
        });
        let text = crate::contract::parse_text(
            &(&body).into(),
            &HashMap::new(),
            &crate::config::Settings::defaults().limits,
        )
        .expect("valid")
        .text;
        TextMessage::new(
            Uuid::now_v7(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Utc::now(),
            text,
        )
    }

    #[test]
    fn a_text_survives_the_wire_and_is_no_call() {
        let sent = message();
        let bytes = sent.to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["version"], "1");
        assert_eq!(json["kind"], "text");
        assert_eq!(TextMessage::from_bytes(&bytes).unwrap(), sent);
        assert!(CallMessage::from_bytes(&bytes).is_err());
    }
}
