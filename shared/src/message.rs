//! What travels on the queue: a versioned envelope around a parsed call,
//! `{"version": "1", "ingest_id": ..., "call": {...}}`, or a group of them as a JSON array of
//! such messages. A worker refuses (dead-letters) a version it does not know rather than
//! guessing.
//!
//! Groups exist for throughput: a gateway puts the calls that arrive while its earlier
//! publishes await their confirms into one message, so the broker stores, confirms,
//! delivers and acks them once instead of once each. Each element is byte for byte the
//! message that call would have been alone; retries, dead letters and replays carry single
//! calls.

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

/// One message holding `calls`, each an encoded single-call message; a lone call is sent
/// as itself.
pub fn group(mut calls: Vec<Vec<u8>>) -> Vec<u8> {
    if calls.len() == 1 {
        return calls.remove(0);
    }
    let mut body = Vec::with_capacity(calls.iter().map(|c| c.len() + 1).sum::<usize>() + 1);
    body.push(b'[');
    for (i, call) in calls.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(call);
    }
    body.push(b']');
    body
}

/// The single-call messages a body holds, as slices of it. A body that is not a well-formed
/// group is returned whole, to be refused as undecodable like any corrupt message.
pub fn split(body: &[u8]) -> Vec<&[u8]> {
    if body.first() != Some(&b'[') {
        return vec![body];
    }
    match serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(body) {
        Ok(calls) if !calls.is_empty() => calls.iter().map(|c| c.get().as_bytes()).collect(),
        _ => vec![body],
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

    #[test]
    fn a_group_splits_back_into_the_very_bytes_of_its_calls() {
        let calls: Vec<Vec<u8>> = (0..3).map(|_| message().to_bytes()).collect();
        let body = group(calls.clone());
        let parts = split(&body);
        assert_eq!(parts.len(), 3);
        for (part, call) in parts.iter().zip(&calls) {
            assert_eq!(*part, call.as_slice());
            assert!(CallMessage::from_bytes(part).is_ok());
        }
    }

    #[test]
    fn a_lone_call_is_not_wrapped() {
        let call = message().to_bytes();
        assert_eq!(group(vec![call.clone()]), call);
        assert_eq!(split(&call), vec![call.as_slice()]);
    }

    #[test]
    fn a_corrupt_group_stays_whole() {
        for body in [&b"[{\"version\": \"1\""[..], b"[]", b"not json"] {
            assert_eq!(split(body), vec![body]);
        }
    }
}
