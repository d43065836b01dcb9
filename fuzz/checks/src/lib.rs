//! The properties the fuzz targets check, one function per target: each takes arbitrary
//! bytes and panics when a property breaks. `cargo fuzz` calls them with generated inputs;
//! the suite calls them with every input of the committed corpus.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{TimeZone, Utc};
use shared::config::{Limits, Settings};
use shared::contract::{parse_call, Body};
use shared::domain::FieldType;
use shared::message::{self, CallEnvelope, CallMessage};
use uuid::Uuid;

static LIMITS: LazyLock<Limits> = LazyLock::new(|| Settings::defaults().limits);

/// An organisation's field definitions, one of each type, so that typed values are read.
static DEFINITIONS: LazyLock<HashMap<String, FieldType>> = LazyLock::new(|| {
    HashMap::from([
        ("opened_at".to_owned(), FieldType::Datetime),
        ("reopen_count".to_owned(), FieldType::Number),
        ("talk".to_owned(), FieldType::Duration),
        ("topic".to_owned(), FieldType::String),
        ("tags".to_owned(), FieldType::StringArray),
    ])
});

/// A request body, as the gateway reads it: refused with a bounded answer, or accepted as
/// a call whose queue message the worker reads back as the very same call, alone, in a
/// group and compressed, and which holds nothing Postgres refuses.
pub fn call_body(data: &[u8]) {
    let Ok(body) = Body::parse(data) else {
        return;
    };
    let parsed = match parse_call(&body, &*DEFINITIONS, &LIMITS) {
        Ok(parsed) => parsed,
        Err(errors) => {
            let shown = errors.iter().count();
            assert!(shown > 0, "a refusal names no field");
            assert!(shown <= LIMITS.max_errors, "{shown} errors in one answer");
            assert_eq!(shown + errors.omitted(), errors.count());
            return;
        }
    };
    let sent = CallMessage::V1(CallEnvelope {
        ingest_id: Uuid::from_u128(1),
        integration_id: Uuid::from_u128(2),
        organisation_id: Uuid::from_u128(3),
        received_at: Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap(),
        call: parsed.call,
    });
    let bytes = sent.to_bytes();
    assert!(
        !bytes.windows(6).any(|w| w == b"\\u0000"),
        "an accepted call holds a NUL, which Postgres refuses"
    );
    let read = CallMessage::from_bytes(&bytes).expect("the worker reads what the gateway wrote");
    assert_eq!(read, sent, "the call changed on the way through the queue");

    let group = message::group(vec![bytes.clone(), bytes.clone()]);
    let compressed = message::compress(&group);
    let body = message::decompress(Some("lz4"), &compressed).expect("our own compression");
    let calls = message::split(&body);
    assert_eq!(calls, [&bytes[..], &bytes[..]], "a group split differently");
}

/// A delivery, as a worker reads it: the first byte picks its `content_encoding`, the rest
/// is its body. Whatever it holds, reading it ends (no panic, no unbounded allocation), and
/// every call read from it encodes back to a message that reads as the same call.
pub fn queue_message(data: &[u8]) {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let encoding = match selector % 3 {
        0 => None,
        1 => Some("lz4"),
        _ => Some("gzip"),
    };
    let Ok(body) = message::decompress(encoding, payload) else {
        return;
    };
    for raw in message::split(&body) {
        if let Ok(read) = CallMessage::from_bytes(raw) {
            let again = CallMessage::from_bytes(&read.to_bytes())
                .expect("a message the worker read encodes to one it reads");
            assert_eq!(again, read, "a call changed when encoded again");
        }
    }
}
