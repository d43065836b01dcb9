//! What travels on the queue: a versioned envelope around a parsed call,
//! `{"version": "1", "ingest_id": ..., "call": {...}}`, or a group of them as a JSON array of
//! such messages. A worker refuses (dead-letters) a version it does not know rather than
//! guessing.
//!
//! Version 2 adds `unregistered_fields` (key -> inferred type): the custom field keys the
//! gateway met for the first time and could not register because Postgres was away; the
//! worker registers them before storing the call. A gateway writes version 2 only for such
//! calls, so that every other message stays readable by a worker that knows version 1 alone.
//!
//! Groups exist for throughput: a gateway puts the calls that arrive while its earlier
//! publishes await their confirms into one message, so the broker stores, confirms,
//! delivers and acks them once instead of once each. Each element is byte for byte the
//! message that call would have been alone; retries, dead letters and replays carry single
//! calls.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::domain::{Call, FieldType};

/// Room reserved for an encoded message. Most calls fit, so the buffer is not regrown (and
/// copied) four times over from 128 bytes as it fills: 6 % fewer instructions for encoding.
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
    /// checks UTF-8 sixteen bytes at a time where serde_json goes byte by byte (gateway 3 %,
    /// worker 5.8 % fewer instructions a call). The JSON is the same, and what reads
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

/// The `content_encoding` of a compressed group: LZ4 block format, the decompressed length
/// first (4 bytes, little-endian).
pub const LZ4: &str = "lz4";

/// The most a compressed message may claim to hold: a group is at most 1 MiB of calls, and a
/// corrupt length must not make a worker allocate gigabytes.
const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("unknown content_encoding {0:?}; only {LZ4:?} is written")]
    UnknownEncoding(String),
    #[error("the {LZ4} body claims {0} bytes, more than a message may hold")]
    TooLarge(usize),
    #[error("the {LZ4} body cannot be decompressed: {0}")]
    Corrupt(String),
}

pub fn compress(body: &[u8]) -> Vec<u8> {
    lz4_flex::compress_prepend_size(body)
}

/// A delivery's JSON, given its `content_encoding`.
pub fn decompress<'a>(
    content_encoding: Option<&str>,
    data: &'a [u8],
) -> Result<Cow<'a, [u8]>, BodyError> {
    match content_encoding {
        None | Some("" | "identity") => Ok(Cow::Borrowed(data)),
        Some(LZ4) => {
            let (size, _) = lz4_flex::block::uncompressed_size(data)
                .map_err(|e| BodyError::Corrupt(e.to_string()))?;
            if size > MAX_DECOMPRESSED_BYTES {
                return Err(BodyError::TooLarge(size));
            }
            // lz4_flex returns what a truncated block held, shorter than the size it declared:
            // taken as whole, a cut group would lose its last calls.
            let body = lz4_flex::decompress_size_prepended(data)
                .map_err(|e| BodyError::Corrupt(e.to_string()))?;
            if body.len() == size {
                Ok(Cow::Owned(body))
            } else {
                Err(BodyError::Corrupt(format!(
                    "{} bytes decompressed of the {size} declared",
                    body.len()
                )))
            }
        }
        Some(other) => Err(BodyError::UnknownEncoding(other.to_owned())),
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
/// group (unbalanced, empty, or with something after its closing bracket) is returned whole,
/// to be refused as undecodable like any corrupt message.
///
/// Only the group's structure is read here: strings are skipped, not validated, since each
/// call is decoded (and validated) right after. Parsing the group as JSON first read every
/// byte twice and took a tenth of the worker's instructions.
pub fn split(body: &[u8]) -> Vec<&[u8]> {
    split_group(body).unwrap_or_else(|| vec![body])
}

fn split_group(body: &[u8]) -> Option<Vec<&[u8]>> {
    if body.first() != Some(&b'[') {
        return None;
    }
    let mut calls = Vec::new();
    let mut depth = 0usize;
    let mut start = 1;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => i = string_end(body, i + 1)?,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    calls.push(element(&body[start..i])?);
                    let rest = &body[i + 1..];
                    return rest.iter().all(u8::is_ascii_whitespace).then_some(calls);
                }
            }
            b',' if depth == 1 => {
                calls.push(element(&body[start..i])?);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index of the quote closing the string whose contents start at `from`. Most of a
/// call's bytes are in strings, so they are searched for quotes and backslashes with SIMD
/// rather than looked at one by one.
fn string_end(body: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + memchr::memchr2(b'"', b'\\', body.get(from..)?)?;
        if body[at] == b'"' {
            return Some(at);
        }
        from = at + 2;
    }
}

/// One element of a group, without the whitespace around it; none is not an element.
fn element(raw: &[u8]) -> Option<&[u8]> {
    let start = raw.iter().position(|b| !b.is_ascii_whitespace())?;
    let end = raw.iter().rposition(|b| !b.is_ascii_whitespace())?;
    Some(&raw[start..=end])
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
    fn a_compressed_group_comes_back_byte_for_byte() {
        let body = group((0..17).map(|_| message().to_bytes()).collect());
        let compressed = compress(&body);
        assert!(
            compressed.len() * 3 < body.len(),
            "{} of {}",
            compressed.len(),
            body.len()
        );
        assert_eq!(decompress(Some(LZ4), &compressed).unwrap(), body.as_slice());
        assert_eq!(decompress(None, &body).unwrap(), body.as_slice());
    }

    #[test]
    fn bodies_that_cannot_be_decompressed_say_why() {
        let compressed = compress(&group((0..3).map(|_| message().to_bytes()).collect()));
        let truncated = &compressed[..compressed.len() / 2];
        assert!(matches!(
            decompress(Some(LZ4), truncated),
            Err(BodyError::Corrupt(_))
        ));
        let mut huge = compressed.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decompress(Some(LZ4), &huge),
            Err(BodyError::TooLarge(_))
        ));
        assert!(matches!(
            decompress(Some("gzip"), &compressed),
            Err(BodyError::UnknownEncoding(_))
        ));
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
        for body in [
            &b"[{\"version\": \"1\""[..],
            b"[]",
            b"not json",
            b"[{}}]",
            b"[{},]",
            b"[{} , , {}]",
            b"[{}] x",
            b"[{\"a\": \"]\"}",
        ] {
            assert_eq!(split(body), vec![body], "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn brackets_commas_and_quotes_inside_strings_do_not_split() {
        let body = br#"[ {"a": "x],[{\"y\\", "b": [1, {"c": 2}]} ,{"d": "\\"} ]"#;
        let parts = split(body);
        assert_eq!(
            parts,
            vec![
                &br#"{"a": "x],[{\"y\\", "b": [1, {"c": 2}]}"#[..],
                br#"{"d": "\\"}"#
            ]
        );
        for part in parts {
            serde_json::from_slice::<serde_json::Value>(part).expect("a whole JSON value");
        }
    }
}
