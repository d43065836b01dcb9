//! Postgres away under load: the gateway keeps accepting calls of the integrations it has
//! loaded, stays ready, and every call it accepted is stored once Postgres is back. Gateway
//! and worker reach Postgres through one TCP proxy, whose cut is the outage; the shared
//! server keeps running for the other tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline_tests::proxy::Proxy;
use pipeline_tests::{call, eventually, via_port, Integration, Options, TestEnv};
use serde_json::{json, Value};
use shared::config::Settings;
use shared::contract::parse_call;
use shared::domain::FieldType;
use shared::message::{CallEnvelope, CallMessage};
use shared::store::fields;
use uuid::Uuid;

/// How long Postgres is away: a minute, as the issue asks (a failover or a restart).
const OUTAGE: Duration = Duration::from_secs(60);
/// Posting tasks, each posting one call after another with a pause, so the load is steady
/// without flooding the shared broker with retries while the worker cannot store.
const POSTERS: usize = 4;
const POST_PAUSE: Duration = Duration::from_millis(100);
/// Load before the cut and after the restore.
const AROUND: Duration = Duration::from_secs(2);
/// Answers in the first moment of the cut may come from requests that were already waiting
/// on the database; after it, every answer for the known integration must be a 2xx.
const SETTLING: Duration = Duration::from_secs(1);
/// The worker's retry step: its whole schedule outlasts the outage half again, so no call
/// runs out of retries while Postgres is away, and one step is what the drain waits at most.
const RETRY_STEP_MS: u64 = 10_000;
/// For everything accepted to be stored after the restore: the last retry step and a margin.
const DRAIN: Duration = Duration::from_secs(60);

/// What one POST got: its status, or `None` when no HTTP answer came.
struct Answer {
    uid: String,
    status: Option<u16>,
    at: Instant,
}

#[tokio::test]
async fn postgres_away_for_a_minute_under_load_stops_no_2xx_and_loses_no_call() {
    let database = Proxy::start("127.0.0.1:5432").await;
    let port = database.port;
    let env = TestEnv::start_with(Options {
        customize: Box::new(move |s| {
            s.database.url = via_port(&s.database.url, port);
            s.database.acquire_timeout_ms = 1000;
            // Each wait is at least 75 % of its step: twice the outage in steps is 1.5 times it.
            let steps = (2 * OUTAGE.as_millis() as u64).div_ceil(RETRY_STEP_MS);
            s.broker.retry_delays_ms = vec![RETRY_STEP_MS; steps as usize];
        }),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    // Loads the integration and its organisation's field definitions into the gateway.
    assert_eq!(env.post(&integration, &call("warm-up")).await.status(), 202);

    let answers = Arc::new(Mutex::new(Vec::new()));
    let posting = Arc::new(AtomicBool::new(true));
    let mut posters = Vec::new();
    for task in 0..POSTERS {
        let (http, url, token) = (
            env.http.clone(),
            integration.url.clone(),
            integration.token.clone(),
        );
        let (answers, posting) = (answers.clone(), posting.clone());
        posters.push(tokio::spawn(async move {
            let mut n = 0;
            while posting.load(Ordering::SeqCst) {
                let uid = format!("p{task}-{n}");
                n += 1;
                let sent = http
                    .post(&url)
                    .header("Authorization", &token)
                    .json(&call(&uid))
                    .send()
                    .await;
                answers.lock().unwrap().push(Answer {
                    uid,
                    status: sent.ok().map(|r| r.status().as_u16()),
                    at: Instant::now(),
                });
                tokio::time::sleep(POST_PAUSE).await;
            }
        }));
    }
    tokio::time::sleep(AROUND).await;

    database.cut();
    let cut_at = Instant::now();
    let mut new_key = call("new-key-during-outage");
    new_key["custom_fields"] = json!({"outage_topic": "billing"});
    let mut new_key_status = None;
    let mut readiness = Vec::new();
    while cut_at.elapsed() < OUTAGE {
        if new_key_status.is_none() && cut_at.elapsed() > OUTAGE / 2 {
            new_key_status = Some(env.post(&integration, &new_key).await.status().as_u16());
        }
        let ready = env
            .http
            .get(format!("{}/readyz", env.base_url))
            .send()
            .await
            .map(|r| r.status().as_u16());
        readiness.push(ready.ok());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    database.restore();
    let restored_at = Instant::now();
    tokio::time::sleep(AROUND).await;
    posting.store(false, Ordering::SeqCst);
    for poster in posters {
        poster.await.unwrap();
    }

    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let during: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.at > cut_at + SETTLING && a.at < restored_at)
        .collect();
    let accepted_during = during
        .iter()
        .filter(|a| a.status.is_some_and(|s| s == 202))
        .count();
    let refused_during: Vec<(&str, Option<u16>)> = during
        .iter()
        .filter(|a| a.status != Some(202))
        .map(|a| (a.uid.as_str(), a.status))
        .collect();
    let first_moment: Vec<Option<u16>> = answers
        .iter()
        .filter(|a| a.at >= cut_at && a.at <= cut_at + SETTLING && a.status != Some(202))
        .map(|a| a.status)
        .collect();
    println!(
        "{} calls posted, {accepted_during} answered 202 while Postgres was away (after its \
         first {SETTLING:?}), {} other answers then, {} non-2xx in the first {SETTLING:?}",
        answers.len(),
        refused_during.len(),
        first_moment.len()
    );
    assert!(
        accepted_during > 0,
        "calls were posted while Postgres was away"
    );
    assert!(
        refused_during.is_empty(),
        "every call of the known integration is accepted while Postgres is away: {refused_during:?}"
    );
    assert!(
        readiness.iter().all(|r| *r == Some(200)),
        "/readyz stays 200 while the broker is up: {readiness:?}"
    );
    assert_eq!(
        new_key_status,
        Some(202),
        "a call with a new custom field key is accepted while Postgres is away"
    );

    let mut accepted: Vec<String> = answers
        .iter()
        .filter(|a| a.status == Some(202))
        .map(|a| a.uid.clone())
        .collect();
    accepted.push("warm-up".into());
    accepted.push("new-key-during-outage".into());
    let stored = eventually(DRAIN, || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM calls WHERE uid = ANY($1)")
            .bind(&accepted)
            .fetch_one(&env.pool)
            .await
            .unwrap();
        (n == accepted.len() as i64).then_some(n).ok_or(n)
    })
    .await;
    assert_eq!(
        stored,
        Ok(accepted.len() as i64),
        "every call answered 202 is stored once Postgres is back"
    );
    let posted: Vec<&str> = answers.iter().map(|a| a.uid.as_str()).collect();
    let strangers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM calls WHERE uid <> ALL($1) AND uid NOT IN ('warm-up', 'new-key-during-outage')",
    )
    .bind(&posted)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(strangers, 0, "only posted calls are stored");
    assert_eq!(
        env.count("SELECT count(*) FROM (SELECT uid FROM calls GROUP BY integration_id, uid HAVING count(*) > 1) d")
            .await,
        0,
        "no call is stored twice"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letters").await,
        0,
        "no call was set aside"
    );

    let (topic, ty): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT c.custom_fields->>'outage_topic', d.field_type
         FROM calls c LEFT JOIN custom_field_definitions d
           ON d.organisation_id = c.organisation_id AND d.key = 'outage_topic'
         WHERE c.uid = 'new-key-during-outage'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(topic.as_deref(), Some("billing"));
    assert_eq!(
        ty.as_deref(),
        Some("string"),
        "the worker registered the key the gateway could not"
    );
}

/// The message a gateway without its database publishes for a call whose custom field keys
/// are all new to it: each listed as unregistered, with the type inferred from its value.
fn unregistered(integration: &Integration, uid: &str, custom_fields: Value) -> Vec<u8> {
    let mut body = call(uid);
    body["custom_fields"] = custom_fields;
    let parsed = parse_call(
        &(&body).into(),
        &HashMap::new(),
        &Settings::defaults().limits,
    )
    .expect("a valid call");
    CallMessage::new(
        CallEnvelope {
            ingest_id: Uuid::now_v7(),
            integration_id: integration.id,
            organisation_id: integration.organisation_id,
            received_at: chrono::Utc::now(),
            call: parsed.call,
        },
        parsed.new_fields.into_iter().collect(),
    )
    .to_bytes()
}

async fn dead_letter_reason(env: &TestEnv, uid: &str) -> Option<String> {
    eventually(Duration::from_secs(20), || async {
        sqlx::query_scalar::<_, String>("SELECT reason FROM dead_letters WHERE uid = $1")
            .bind(uid)
            .fetch_optional(&env.pool)
            .await
            .unwrap()
            .ok_or(())
    })
    .await
    .ok()
}

#[tokio::test]
async fn keys_a_gateway_could_not_register_are_registered_by_the_worker_within_the_bound() {
    let env = TestEnv::start_with(Options {
        customize: Box::new(|s| s.limits.max_field_definitions = 2),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let organisation = integration.organisation_id;
    fields::define(&env.pool, organisation, "answer_time", FieldType::Duration)
        .await
        .unwrap();

    // Inferred as a number at the gateway, defined as a duration: read again as one.
    env.publish_raw(&unregistered(
        &integration,
        "registered",
        json!({"answer_time": 12, "topic": "billing"}),
    ))
    .await;
    env.wait_for_count(
        "SELECT count(*) FROM calls WHERE uid = 'registered'",
        1,
        Duration::from_secs(20),
    )
    .await;
    let stored: Value =
        sqlx::query_scalar("SELECT custom_fields FROM calls WHERE uid = 'registered'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(stored, json!({"answer_time": 12, "topic": "billing"}));
    let defined = fields::load(&env.pool, organisation).await.unwrap();
    assert_eq!(
        defined,
        HashMap::from([
            ("answer_time".to_owned(), FieldType::Duration),
            ("topic".to_owned(), FieldType::String),
        ]),
        "the new key is registered as inferred; the defined one keeps its type"
    );

    env.publish_raw(&unregistered(
        &integration,
        "conflict",
        json!({"answer_time": "soon"}),
    ))
    .await;
    assert_eq!(
        dead_letter_reason(&env, "conflict").await.as_deref(),
        Some("field_type_conflict")
    );

    env.publish_raw(&unregistered(
        &integration,
        "full",
        json!({"one_too_many": true}),
    ))
    .await;
    assert_eq!(
        dead_letter_reason(&env, "full").await.as_deref(),
        Some("field_definitions_full")
    );
    assert_eq!(
        fields::load(&env.pool, organisation).await.unwrap().len(),
        2,
        "nothing registered past the bound"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM calls WHERE uid IN ('conflict', 'full')")
            .await,
        0
    );
}
