//! Retries and updates never duplicate, and an older version never wins.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use pipeline_tests::{call, Options, TestEnv};
use serde_json::json;
use shared::contract::parse_call;
use shared::message::{CallEnvelope, CallMessage};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn the_same_uid_twice_is_one_call_updated_in_place() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let mut body = call("same");
    body["duration"] = json!(10);
    assert_eq!(env.post(&integration, &body).await.status(), 202);
    env.wait_for_count("SELECT count(*) FROM calls WHERE duration = 10", 1, WAIT)
        .await;

    body["duration"] = json!(20);
    assert_eq!(env.post(&integration, &body).await.status(), 202);
    env.wait_for_count("SELECT count(*) FROM calls WHERE duration = 20", 1, WAIT)
        .await;
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 1);
}

#[tokio::test]
async fn the_same_uid_on_two_integrations_is_two_calls() {
    let env = TestEnv::start().await;
    let a = env.integration().await;
    let b = env.integration().await;
    assert_eq!(env.post(&a, &call("shared-uid")).await.status(), 202);
    assert_eq!(env.post(&b, &call("shared-uid")).await.status(), 202);
    env.wait_for_count("SELECT count(*) FROM calls", 2, WAIT)
        .await;
}

#[tokio::test]
async fn the_same_client_id_is_one_client() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    for uid in ["c1", "c2", "c3"] {
        let mut body = call(uid);
        body["client"] = json!({"id": "client@email.com", "first_name": "John"});
        assert_eq!(env.post(&integration, &body).await.status(), 202);
    }
    env.wait_for_count("SELECT count(*) FROM calls", 3, WAIT)
        .await;
    assert_eq!(env.count("SELECT count(*) FROM clients").await, 1);
    assert_eq!(
        env.count("SELECT count(DISTINCT client_id) FROM calls")
            .await,
        1
    );
}

#[tokio::test]
async fn a_retried_post_without_uid_is_one_call() {
    let env = TestEnv::start_with(Options {
        customize: Box::new(|s| s.http.queued_notes = true),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let mut body = call("unused");
    body.as_object_mut().unwrap().remove("uid");
    let first = env.post(&integration, &body).await;
    assert_eq!(first.status(), 202);
    let id = first.json::<serde_json::Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.wait_for_count("SELECT count(*) FROM calls", 1, WAIT)
        .await;

    let retry = env.post(&integration, &body).await;
    assert_eq!(retry.status(), 202);
    assert_eq!(
        retry.json::<serde_json::Value>().await.unwrap()["data"]["id"],
        id.as_str()
    );
    env.wait_for_count("SELECT count(*) FROM queued_calls", 0, WAIT)
        .await;
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 1);
    assert_eq!(
        env.count("SELECT count(*) FROM calls WHERE uid_derived")
            .await,
        1
    );
    let (status, doc) = env.get_call(&integration, &id).await;
    assert_eq!(status, 200);
    assert_eq!(doc["data"]["attributes"]["uid_derived"], true);
}

/// Two workers can take two updates of one uid in either order: published here newest
/// first, straight onto the work queue, the older one arriving second must change nothing.
#[tokio::test]
async fn an_older_update_after_a_newer_one_leaves_the_newer() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    // The gateway declares the queues on its first publish.
    assert_eq!(env.post(&integration, &call("warm-up")).await.status(), 202);

    let version = |duration: f64, at_secs: i64| {
        let mut body = call("ordered");
        body["duration"] = json!(duration);
        let call = parse_call(
            &(&body).into(),
            &std::collections::HashMap::new(),
            &shared::config::Settings::defaults().limits,
        )
        .unwrap()
        .call;
        CallMessage::V1(CallEnvelope {
            ingest_id: Uuid::now_v7(),
            integration_id: integration.id,
            organisation_id: integration.organisation_id,
            received_at: Utc.timestamp_opt(1_700_000_000 + at_secs, 0).unwrap(),
            call,
        })
    };
    let newer = version(2.0, 10);
    let older = version(1.0, 0);

    env.publish_raw(&newer.to_bytes()).await;
    env.wait_for_count(
        "SELECT count(*) FROM calls WHERE uid = 'ordered' AND duration = 2",
        1,
        WAIT,
    )
    .await;
    // The worker clears a call's queued note in the transaction that handles it, so a note
    // for the older message tells when it has been handled.
    let older_id = older.envelope().ingest_id;
    sqlx::query("INSERT INTO queued_calls (ingest_id, integration_id, uid, received_at) VALUES ($1, $2, 'ordered', now())")
        .bind(older_id)
        .bind(integration.id)
        .execute(&env.pool)
        .await
        .unwrap();
    env.publish_raw(&older.to_bytes()).await;
    env.wait_for_count(
        &format!("SELECT count(*) FROM queued_calls WHERE ingest_id = '{older_id}'"),
        0,
        WAIT,
    )
    .await;
    assert_eq!(
        env.count("SELECT count(*) FROM calls WHERE uid = 'ordered' AND duration = 2")
            .await,
        1
    );
    assert_eq!(
        env.count("SELECT count(*) FROM calls WHERE uid = 'ordered'")
            .await,
        1
    );
}

/// Versions of one call that land in one batch: only the newest is written (a multi-row
/// upsert cannot touch a row twice), whatever their order in the queue, and the rest of the
/// batch is stored alongside.
#[tokio::test]
async fn versions_of_one_call_in_one_batch_leave_the_newest() {
    let mut env = TestEnv::start_with(Options {
        worker: false,
        customize: Box::new(|s| {
            s.worker.batch_wait_ms = 500;
            s.http.queued_notes = true;
        }),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    for (duration, uid) in [
        (1.0, "batched"),
        (2.0, "other-1"),
        (3.0, "batched"),
        (4.0, "other-2"),
        (5.0, "batched"),
    ] {
        let mut body = call(uid);
        body["duration"] = json!(duration);
        assert_eq!(env.post(&integration, &body).await.status(), 202);
    }
    env.wait_for_ready(5, WAIT).await;
    env.start_worker().await;
    env.wait_for_count("SELECT count(*) FROM calls", 3, WAIT)
        .await;
    env.wait_for_count("SELECT count(*) FROM queued_calls", 0, WAIT)
        .await;
    assert_eq!(
        env.count("SELECT count(*) FROM calls WHERE uid = 'batched' AND duration = 5")
            .await,
        1
    );
    env.wait_for_ready(0, WAIT).await;
}
