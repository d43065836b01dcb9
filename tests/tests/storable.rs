//! Accepted means storable: bodies generated to hold what Postgres refuses (NUL characters,
//! far years, extreme numbers, long keys, odd Unicode) go through the gateway's parsing; every
//! call it accepts goes through the queue message and is written with the worker's own
//! statement into a real Postgres, and must be stored.

use std::cell::Cell;
use std::collections::HashMap;

use chrono::Utc;
use pipeline_tests::{Integration, Options, TestEnv};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use shared::config::Limits;
use shared::contract::{parse_call, Body};
use shared::domain::FieldType;
use shared::message::{CallEnvelope, CallMessage};
use shared::store::fields;
use uuid::Uuid;
use worker::calls::store::{write_batch, Ready};
use worker::operators::Operator;

/// Characters that break storage, escaping or counting, among arbitrary ones.
fn text() -> impl Strategy<Value = String> {
    let hostile = prop::sample::select(vec![
        '\0', '"', '\\', '\u{1}', '\u{7f}', '\u{ffff}', '\u{fffe}', '\u{202e}', '😀', 'я', ' ',
        '\n',
    ]);
    let plain = prop::sample::select(('a'..='z').chain('0'..='9').collect::<Vec<_>>());
    prop::collection::vec(
        prop_oneof![12 => plain, 1 => any::<char>(), 1 => hostile],
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |n| n.is_finite())
            .prop_map(|n| json!(n)),
        prop::sample::select(vec!["1e308", "-0", "410.1", "5e-324", "NaN", "inf"])
            .prop_map(|s| json!(s)),
    ]
}

/// Date-times around and past what Postgres and RFC 3339 hold, in the page's spellings.
fn datetime() -> impl Strategy<Value = String> {
    let zone = prop::sample::select(vec!["Z", "+03", "-0230", "+23:59", "Z+03", ""]);
    prop_oneof![
        4 => (
            prop_oneof![0i32..=10_000, -300_000i32..=300_000],
            1u32..=12,
            1u32..=31,
            0u32..=23,
            0u32..=59,
            zone,
        )
            .prop_map(|(y, mo, d, h, mi, z)| {
                let year = if (0..=9999).contains(&y) {
                    format!("{y:04}")
                } else {
                    format!("{y:+}")
                };
                format!("{year}-{mo:02}-{d:02}T{h:02}:{mi:02}:00.123456789{z}")
            }),
        1 => text(),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::String),
        number(),
        any::<bool>().prop_map(Value::Bool),
        datetime().prop_map(Value::String),
        text().prop_map(|t| json!(format!("https://r.example/{t}"))),
        Just(Value::Null),
    ]
}

fn custom_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => scalar(),
        1 => prop::collection::vec(text().prop_map(Value::String), 0..4).prop_map(Value::Array),
        1 => prop::collection::vec(number(), 0..4).prop_map(Value::Array),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec!["topic", "dur", "when", "n", "tags"]).prop_map(str::to_owned),
        2 => text(),
        1 => (1usize..400).prop_map(|n| "ключ".repeat(n)),
    ]
}

/// A field that is mostly well formed, sometimes hostile, sometimes absent.
fn maybe(
    valid: Value,
    hostile: impl Strategy<Value = Value>,
) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![8 => Just(Some(valid)), 1 => hostile.prop_map(Some), 1 => Just(None)]
}

/// Mostly an ordinary phrase (its end after its start), sometimes any numbers and roles.
fn phrase() -> impl Strategy<Value = Value> {
    let times = prop_oneof![
        8 => (0u32..10_000, 0u32..100).prop_map(|(start, length)| (json!(start), json!(start + length))),
        1 => (number(), number()),
    ];
    let role = prop_oneof![
        8 => prop::sample::select(vec!["operator", "client"]).prop_map(str::to_owned),
        1 => text(),
    ];
    (text(), times, role).prop_map(|(text, (start, end), role)| {
        json!({"text": text, "start_time": start, "end_time": end, "role": role})
    })
}

fn body() -> impl Strategy<Value = Value> {
    (
        maybe(json!("operator@email.com"), text().prop_map(Value::String)),
        maybe(json!("2024-03-01T10:00:00+03"), datetime().prop_map(Value::String)),
        maybe(
            json!("https://recordings.example/a.wav"),
            text().prop_map(|t| json!(format!("https://recordings.example/{t}"))),
        ),
        maybe(json!("u-1"), prop_oneof![text().prop_map(Value::String), number()]),
        maybe(json!("+375332222453"), prop_oneof![text().prop_map(Value::String), number()]),
        maybe(json!(12.5), number()),
        maybe(json!(9), number()),
        maybe(
            json!({"id": "client@email.com", "first_name": "John"}),
            (text(), text(), prop_oneof![text().prop_map(Value::String), number()]).prop_map(
                |(company, name, id)| json!({"company_name": company, "first_name": name, "id": id}),
            ),
        ),
        prop::collection::vec(phrase(), 0..4),
        prop::collection::vec((key(), custom_value()), 0..3),
    )
        .prop_map(
            |(operator, started, media, uid, phone, duration, nps, client, phrases, custom)| {
                let mut body = Map::new();
                for (name, value) in [
                    ("operator_id", operator),
                    ("started_at", started),
                    ("media_url", media),
                    ("uid", uid),
                    ("client_phone_number", phone),
                    ("duration", duration),
                    ("nps", nps),
                    ("client", client),
                ] {
                    if let Some(value) = value {
                        body.insert(name.into(), value);
                    }
                }
                if !phrases.is_empty() {
                    body.insert("transcription".into(), Value::Array(phrases));
                }
                body.insert(
                    "custom_fields".into(),
                    Value::Object(custom.into_iter().collect()),
                );
                Value::Object(body)
            },
        )
}

struct Target {
    env: TestEnv,
    integration: Integration,
    operator: Operator,
    limits: Limits,
    definitions: HashMap<String, FieldType>,
}

impl Target {
    /// Parses `body` as the gateway does; an accepted call must then be stored.
    async fn check(&self, body: &Value) -> Result<bool, TestCaseError> {
        let bytes = serde_json::to_vec(body).expect("a JSON body");
        let body = Body::parse(&bytes).expect("serde_json reads what it wrote");
        let Ok(parsed) = parse_call(&body, &self.definitions, &self.limits) else {
            return Ok(false);
        };
        let pool = &self.env.pool;
        let org = self.integration.organisation_id;
        fields::register(
            pool,
            org,
            &parsed.new_fields,
            self.limits.max_field_definitions,
        )
        .await
        .map_err(|e| TestCaseError::fail(format!("registering its fields: {e}")))?;
        let message = CallMessage::V1(CallEnvelope {
            ingest_id: Uuid::now_v7(),
            integration_id: self.integration.id,
            organisation_id: org,
            received_at: Utc::now(),
            call: parsed.call,
        })
        .to_bytes();
        let decoded = CallMessage::from_bytes(&message)
            .map_err(|e| TestCaseError::fail(format!("the worker cannot read it: {e}")))?;
        let envelope = decoded.envelope();
        let key = envelope.call.storage_key();
        let uid = key.uid.clone();
        let ready = Ready {
            envelope,
            key,
            operator: self.operator,
        };
        write_batch(pool, &[ready], &[], &[])
            .await
            .map_err(|e| TestCaseError::fail(format!("Postgres refused it: {e}")))?;
        let stored: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM calls WHERE integration_id = $1 AND uid = $2 AND ingest_id = $3",
        )
        .bind(self.integration.id)
        .bind(&uid)
        .bind(envelope.ingest_id)
        .fetch_one(pool)
        .await
        .expect("count");
        prop_assert_eq!(stored, 1, "the call is not in calls");
        Ok(true)
    }
}

#[test]
fn every_call_the_gateway_accepts_is_stored() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let target = runtime.block_on(async {
        let env = TestEnv::start_with(Options {
            worker: false,
            ..Default::default()
        })
        .await;
        let integration = env.integration().await;
        let (user_id, department_id) =
            sqlx::query_as("SELECT id, department_id FROM users WHERE organisation_id = $1")
                .bind(integration.organisation_id)
                .fetch_one(&env.pool)
                .await
                .expect("the integration's operator");
        let limits = env.settings.limits.clone();
        Target {
            env,
            integration,
            operator: Operator {
                user_id,
                department_id,
            },
            limits,
            definitions: HashMap::from([
                ("dur".to_owned(), FieldType::Duration),
                ("when".to_owned(), FieldType::Datetime),
                ("n".to_owned(), FieldType::Number),
                ("tags".to_owned(), FieldType::StringArray),
            ]),
        }
    });
    let mut runner = TestRunner::new(Config {
        cases: 1000,
        failure_persistence: None,
        ..Config::default()
    });
    let (accepted, refused) = (Cell::new(0), Cell::new(0));
    runner
        .run(&body(), |body| {
            let tally = match runtime.block_on(target.check(&body))? {
                true => &accepted,
                false => &refused,
            };
            tally.set(tally.get() + 1);
            Ok(())
        })
        .unwrap();
    let (accepted, refused) = (accepted.get(), refused.get());
    println!("{accepted} bodies accepted and stored, {refused} refused");
    // Both sides of the property must be exercised, or the test proves nothing.
    assert!(
        accepted >= 100,
        "only {accepted} of the bodies were accepted"
    );
    assert!(refused >= 100, "only {refused} of the bodies were refused");
}
