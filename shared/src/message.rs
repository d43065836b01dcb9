//! What travels on the queue: a versioned envelope around a parsed call,
//! `{"version": "1", "ingest_id": ..., "call": {...}}`, or a group of them as a JSON array of
//! such messages. A worker refuses (dead-letters) a version it does not know rather than
//! guessing.
//!
//! Version 2 adds `unregistered_fields` (key -> inferred type): the custom field keys the
//! gateway met for the first time and could not register because Postgres was away; the
//! worker registers them before storing the call. A gateway writes version 2 only for such
//! calls, so that every other message stays readable by a worker that knows version 1 alone.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::domain::{Call, FieldType};

mod group;

pub use group::{compress, decompress, group, split, BodyError, LZ4};

/// Room reserved for an encoded message. Most calls fit, so the buffer is not regrown (and
/// copied) four times over from 128 bytes as it fills.
const TYPICAL_MESSAGE_BYTES: usize = 2048;

#[derive(Debug, Clone, PartialEq)]
pub enum CallMessage {
    V1(CallEnvelope),
    V2 {
        envelope: CallEnvelope,
        unregistered_fields: UnregisteredFields,
    },
}

/// First-seen custom field keys with the type inferred from their value, for the worker to
/// register.
pub type UnregisteredFields = BTreeMap<String, FieldType>;

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
    #[serde(with = "crate::domain::wire_time")]
    received_at: DateTime<Utc>,
    call: &'a Call,
    #[serde(skip_serializing_if = "Option::is_none")]
    unregistered_fields: Option<&'a UnregisteredFields>,
}

#[derive(Deserialize)]
struct Wire {
    version: Version,
    ingest_id: Uuid,
    integration_id: Uuid,
    organisation_id: Uuid,
    #[serde(with = "crate::domain::wire_time")]
    received_at: DateTime<Utc>,
    call: Call,
    unregistered_fields: Option<UnregisteredFields>,
}

#[derive(Serialize, Deserialize)]
enum Version {
    #[serde(rename = "1")]
    V1,
    #[serde(rename = "2")]
    V2,
}

impl Serialize for CallMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (version, e, unregistered_fields) = match self {
            Self::V1(e) => (Version::V1, e, None),
            Self::V2 {
                envelope,
                unregistered_fields,
            } => (Version::V2, envelope, Some(unregistered_fields)),
        };
        WireRef {
            version,
            ingest_id: &e.ingest_id,
            integration_id: &e.integration_id,
            organisation_id: &e.organisation_id,
            received_at: e.received_at,
            call: &e.call,
            unregistered_fields,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CallMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(deserializer)?;
        let envelope = CallEnvelope {
            ingest_id: w.ingest_id,
            integration_id: w.integration_id,
            organisation_id: w.organisation_id,
            received_at: w.received_at,
            call: w.call,
        };
        match (w.version, w.unregistered_fields) {
            (Version::V1, None) => Ok(Self::V1(envelope)),
            (Version::V1, Some(_)) => Err(serde::de::Error::custom(
                "unregistered_fields in a version 1 message",
            )),
            (Version::V2, unregistered) => Ok(Self::V2 {
                envelope,
                unregistered_fields: unregistered.unwrap_or_default(),
            }),
        }
    }
}

impl CallMessage {
    /// The message of a call, in the oldest version that holds it.
    pub fn new(envelope: CallEnvelope, unregistered_fields: UnregisteredFields) -> Self {
        if unregistered_fields.is_empty() {
            Self::V1(envelope)
        } else {
            Self::V2 {
                envelope,
                unregistered_fields,
            }
        }
    }

    pub fn envelope(&self) -> &CallEnvelope {
        match self {
            Self::V1(envelope) | Self::V2 { envelope, .. } => envelope,
        }
    }

    pub fn envelope_mut(&mut self) -> &mut CallEnvelope {
        match self {
            Self::V1(envelope) | Self::V2 { envelope, .. } => envelope,
        }
    }

    /// Keys its gateway could not register; none for a version 1 message.
    pub fn unregistered_fields(&self) -> Option<&UnregisteredFields> {
        match self {
            Self::V1(_) => None,
            Self::V2 {
                unregistered_fields,
                ..
            } => Some(unregistered_fields).filter(|f| !f.is_empty()),
        }
    }

    /// With sonic-rs rather than serde_json, here and in `from_bytes`: it escapes strings and
    /// checks UTF-8 sixteen bytes at a time where serde_json goes byte by byte (docs/benchmark.md).
    /// The JSON is the same, and what reads
    /// messages elsewhere (tests, dead letters) still reads them with serde_json.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(TYPICAL_MESSAGE_BYTES);
        sonic_rs::to_writer(&mut bytes, self).expect("a call message always serialises");
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, sonic_rs::Error> {
        sonic_rs::from_slice(bytes)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;

    pub(crate) fn message() -> CallMessage {
        let body = serde_json::json!({
            "operator_id": "operator@email.com",
            "started_at": "2024-03-01T10:00:00+03",
            "media_url": "https://recordings.example/x.wav",
            "uid": "u-1",
            "custom_fields": {"topic": "billing"},
        });
        let call = crate::contract::parse_call(
            &(&body).into(),
            &HashMap::new(),
            &crate::config::Settings::defaults().limits,
        )
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
    fn a_call_with_unregistered_fields_travels_as_version_2_and_any_other_as_version_1() {
        let CallMessage::V1(envelope) = message() else {
            unreachable!()
        };
        let plain = CallMessage::new(envelope.clone(), UnregisteredFields::new());
        assert_eq!(plain, CallMessage::V1(envelope.clone()));
        let json: serde_json::Value = serde_json::from_slice(&plain.to_bytes()).unwrap();
        assert!(json.get("unregistered_fields").is_none());

        let fields = UnregisteredFields::from([("topic".to_owned(), FieldType::String)]);
        let sent = CallMessage::new(envelope, fields.clone());
        let bytes = sent.to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["version"], "2");
        assert_eq!(
            json["unregistered_fields"],
            serde_json::json!({"topic": "string"})
        );
        let read = CallMessage::from_bytes(&bytes).unwrap();
        assert_eq!(read, sent);
        assert_eq!(read.unregistered_fields(), Some(&fields));
    }

    #[test]
    fn a_version_1_message_claiming_unregistered_fields_is_refused() {
        let mut json: serde_json::Value = serde_json::from_slice(&message().to_bytes()).unwrap();
        json["unregistered_fields"] = serde_json::json!({"topic": "string"});
        assert!(CallMessage::from_bytes(&serde_json::to_vec(&json).unwrap()).is_err());
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let mut json: serde_json::Value = serde_json::from_slice(&message().to_bytes()).unwrap();
        json["version"] = "3".into();
        assert!(CallMessage::from_bytes(&serde_json::to_vec(&json).unwrap()).is_err());
    }

    #[test]
    fn corrupt_bytes_are_refused_not_read_leniently() {
        let bytes = message().to_bytes();
        let at = bytes.windows(7).position(|w| w == b"billing").unwrap();
        let mut invalid_utf8 = bytes.clone();
        invalid_utf8[at] = 0xff;
        assert!(CallMessage::from_bytes(&invalid_utf8).is_err());
        assert!(CallMessage::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b" x");
        assert!(CallMessage::from_bytes(&trailing).is_err());
    }
}
