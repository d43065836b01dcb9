//! Calls that cannot be attributed are kept whole with their reason, never stored as calls.

use std::time::Duration;

use pipeline_tests::{call, Integration, TestEnv};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn an_unknown_operator_is_dead_lettered_with_the_whole_message() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let mut body = call("lost-1");
    body["operator_id"] = json!("nobody@email.com");
    body["custom_fields"] = json!({"topic": "billing"});
    assert_eq!(env.post(&integration, &body).await.status(), 202);

    env.wait_for_count("SELECT count(*) FROM dead_letters", 1, WAIT)
        .await;
    let (reason, operator_id, uid, message): (String, String, String, Value) =
        sqlx::query_as("SELECT reason, operator_id, uid, message FROM dead_letters")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(reason, "operator_not_found");
    assert_eq!(operator_id, "nobody@email.com");
    assert_eq!(uid, "lost-1");
    assert_eq!(message["version"], "1");
    assert_eq!(message["integration_id"], integration.id.to_string());
    assert_eq!(
        message["call"]["custom_fields"]["topic"],
        json!({"type": "string", "value": "billing"})
    );
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 0);

    let (status, doc) = env.get_call(&integration, "lost-1").await;
    assert_eq!(status, 200);
    assert_eq!(doc["data"]["attributes"]["status"], "dead_lettered");
    assert_eq!(doc["data"]["attributes"]["reason"], "operator_not_found");
    assert!(doc["data"]["attributes"]["replay"]
        .as_str()
        .unwrap()
        .contains("bound"));
}

#[tokio::test]
async fn an_inactive_operator_is_dead_lettered_as_inactive() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    env.bind(
        integration.id,
        &[("operator@email.com", "operator@email.com", false)],
    )
    .await;
    assert_set_aside(&env, &integration, "inactive-1", "operator_inactive").await;
}

#[tokio::test]
async fn a_deactivated_user_makes_the_operator_inactive() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    sqlx::query("UPDATE users SET active = false")
        .execute(&env.pool)
        .await
        .unwrap();
    assert_set_aside(&env, &integration, "inactive-2", "operator_inactive").await;
}

#[tokio::test]
async fn a_binding_left_out_of_an_import_stops_matching() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    env.bind(integration.id, &[("other@email.com", "ext-200", true)])
        .await;
    assert_set_aside(&env, &integration, "left-out", "operator_inactive").await;
    let kept: i64 = env
        .count("SELECT count(*) FROM user_account_bindings")
        .await;
    assert_eq!(kept, 2, "deactivated, not deleted");
}

#[tokio::test]
async fn a_message_that_cannot_be_decoded_is_dead_lettered_and_the_queue_moves_on() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    assert_eq!(env.post(&integration, &call("before")).await.status(), 202);
    env.wait_for_count("SELECT count(*) FROM calls", 1, WAIT)
        .await;

    env.publish_raw(br#"{"version":"99","call":{}}"#).await;
    env.publish_raw(b"\xff not json").await;
    assert_eq!(env.post(&integration, &call("after")).await.status(), 202);
    env.wait_for_count("SELECT count(*) FROM calls", 2, WAIT)
        .await;
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters WHERE reason = 'undecodable'",
        2,
        WAIT,
    )
    .await;
    let kept: Value =
        sqlx::query_scalar("SELECT message FROM dead_letters WHERE message ? 'version'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(kept["version"], "99");
}

/// Posts a call for `uid` and expects it dead-lettered with `reason`, and no call row.
async fn assert_set_aside(env: &TestEnv, integration: &Integration, uid: &str, reason: &str) {
    assert_eq!(env.post(integration, &call(uid)).await.status(), 202);
    env.wait_for_count(
        &format!("SELECT count(*) FROM dead_letters WHERE reason = '{reason}' AND uid = '{uid}'"),
        1,
        WAIT,
    )
    .await;
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 0);
}
