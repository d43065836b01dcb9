//! What travels on the queue: a versioned envelope around a parsed call,
//! `{"version": "1", "ingest_id": ..., "call": {...}}`. A worker refuses (dead-letters) a
//! version it does not know rather than guessing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::domain::Call;

#[derive(Debug, Clone, PartialEq)]
pub enum CallMessage {
    V1(CallEnvelope),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallEnvelope {
    /// Time-ordered (UUIDv7): with `received_at` it orders two versions of one call.
    pub ingest_id: Uuid,
    pub integration_id: Uuid,
    pub organisation_id: Uuid,
    pub received_at: DateTime<Utc>,
    pub call: Call,
}

/// The wire form, field by field. Not an internally tagged enum (nor `flatten`), which serde
/// decodes by buffering the whole message first: that was the worker's hottest allocation.
#[derive(Serialize)]
struct WireRef<'a> {
    version: Version,
    ingest_id: &'a Uuid,
    integration_id: &'a Uuid,
    organisation_id: &'a Uuid,
    received_at: &'a DateTime<Utc>,
    call: &'a Call,
}

#[derive(Deserialize)]
struct Wire {
    version: Version,
    ingest_id: Uuid,
    integration_id: Uuid,
    organisation_id: Uuid,
    received_at: DateTime<Utc>,
    call: Call,
}

#[derive(Serialize, Deserialize)]
enum Version {
    #[serde(rename = "1")]
    V1,
}

impl Serialize for CallMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::V1(e) => WireRef {
                version: Version::V1,
                ingest_id: &e.ingest_id,
                integration_id: &e.integration_id,
                organisation_id: &e.organisation_id,
                received_at: &e.received_at,
                call: &e.call,
            }
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for CallMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(deserializer)?;
        match w.version {
            Version::V1 => Ok(Self::V1(CallEnvelope {
                ingest_id: w.ingest_id,
                integration_id: w.integration_id,
                organisation_id: w.organisation_id,
                received_at: w.received_at,
                call: w.call,
            })),
        }
    }
}

impl CallMessage {
    pub fn envelope(&self) -> &CallEnvelope {
        match self {
            Self::V1(envelope) => envelope,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a call message always serialises")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn message() -> CallMessage {
        let body = serde_json::json!({
            "operator_id": "operator@email.com",
            "started_at": "2024-03-01T10:00:00+03",
            "media_url": "https://recordings.example/x.wav",
            "uid": "u-1",
            "custom_fields": {"topic": "billing"},
        });
        let call = crate::contract::parse_call(&body, &HashMap::new())
            .expect("valid")
            .call;
        CallMessage::V1(CallEnvelope {
            ingest_id: Uuid::now_v7(),
            integration_id: Uuid::new_v4(),
            organisation_id: Uuid::new_v4(),
            received_at: Utc::now(),
            call,
        })
    }

    #[test]
    fn a_message_survives_the_wire_and_names_its_version() {
        let sent = message();
        let bytes = sent.to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["version"], "1");
        assert_eq!(json["call"]["uid"], "u-1");
        assert_eq!(CallMessage::from_bytes(&bytes).unwrap(), sent);
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let mut json: serde_json::Value = serde_json::from_slice(&message().to_bytes()).unwrap();
        json["version"] = "2".into();
        assert!(CallMessage::from_bytes(&serde_json::to_vec(&json).unwrap()).is_err());
    }
}
