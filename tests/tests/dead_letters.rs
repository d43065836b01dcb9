//! Calls that cannot be stored are kept whole with their reason, never half-written; those
//! set aside for their operator come back by themselves once the operator is bound.

use std::sync::Arc;
use std::time::Duration;

use pipeline_tests::{call, metric, Integration, Options, TestEnv};
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

#[tokio::test]
async fn a_call_for_an_unbound_operator_is_stored_by_itself_once_the_binding_is_imported() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let mut body = call("early-1");
    body["operator_id"] = json!("new-hire@email.com");
    body["custom_fields"] = json!({"topic": "billing"});
    assert_eq!(env.post(&integration, &body).await.status(), 202);
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters WHERE reason = 'operator_not_found'",
        1,
        WAIT,
    )
    .await;
    let message: Value = sqlx::query_scalar("SELECT message FROM dead_letters")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(message["call"]["uid"], "early-1");
    assert_eq!(message["call"]["operator_id"], "new-hire@email.com");

    // The product's import API, as the people running the contact centre would use it.
    let response = env
        .http
        .put(format!(
            "{}/api/v1/api_integrations/{}/import_user_account_bindings",
            env.base_url, integration.id
        ))
        .header("Authorization", &env.admin_token)
        .json(&json!({"data": [
            {"email": "operator@email.com", "first_name": "Op", "last_name": "Erator",
             "integration_uid": "operator@email.com", "department": "Support"},
            {"email": "new-hire@email.com", "first_name": "New", "last_name": "Hire",
             "integration_uid": "new-hire@email.com", "department": "Sales"},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    env.wait_for_count("SELECT count(*) FROM calls", 1, WAIT)
        .await;
    env.wait_for_count("SELECT count(*) FROM dead_letters", 0, WAIT)
        .await;
    let (status, doc) = env.get_call(&integration, "early-1").await;
    assert_eq!(status, 200);
    assert_eq!(doc["data"]["attributes"]["status"], "stored");
    assert_eq!(doc["data"]["attributes"]["department"], "Sales");
    assert_eq!(
        doc["data"]["attributes"]["custom_fields"]["topic"],
        "billing"
    );
    // Once: the replay is not repeated by the periodic sweep or a second import.
    env.bind(
        integration.id,
        &[("new-hire@email.com", "new-hire@email.com", true)],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 1);
    assert_eq!(
        metric(
            &env.worker_metrics().await,
            "callq_worker_dead_letters_replayed_total"
        ),
        1.0
    );
}

#[tokio::test]
async fn a_call_for_an_inactive_operator_is_stored_once_the_operator_is_reactivated() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    env.bind(
        integration.id,
        &[("operator@email.com", "operator@email.com", false)],
    )
    .await;
    assert_set_aside(&env, &integration, "paused-1", "operator_inactive").await;
    env.bind(
        integration.id,
        &[("operator@email.com", "operator@email.com", true)],
    )
    .await;
    env.wait_for_count("SELECT count(*) FROM calls WHERE uid = 'paused-1'", 1, WAIT)
        .await;
    env.wait_for_count("SELECT count(*) FROM dead_letters", 0, WAIT)
        .await;
}

#[tokio::test]
async fn a_call_that_panics_the_worker_is_set_aside_as_poison_and_the_rest_flow() {
    let env = TestEnv::start_with(Options {
        customize: Box::new(|s| s.broker.delivery_limit = 3),
        inspector: Some(Arc::new(|message: &shared::message::CallMessage| {
            if message.envelope().call.uid.as_ref().map(|u| u.as_str()) == Some("poison-1") {
                panic!("a bug this call triggers");
            }
        })),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    assert_eq!(
        env.post(&integration, &call("poison-1")).await.status(),
        202
    );
    for i in 0..5 {
        let status = env
            .post(&integration, &call(&format!("behind-{i}")))
            .await
            .status();
        assert_eq!(status, 202);
    }
    env.wait_for_count("SELECT count(*) FROM calls", 5, WAIT)
        .await;
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters WHERE reason = 'poison' AND uid = 'poison-1'",
        1,
        WAIT,
    )
    .await;
    let (detail, message): (String, Value) =
        sqlx::query_as("SELECT detail, message FROM dead_letters")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(detail.contains("crashed or panicked"), "{detail}");
    assert_eq!(message["call"]["uid"], "poison-1");
    assert_eq!(
        env.count("SELECT count(*) FROM calls WHERE uid = 'poison-1'")
            .await,
        0
    );
    let panics = metric(
        &env.worker_metrics().await,
        "callq_worker_handler_panics_total",
    );
    assert!(
        (3.0..=4.0).contains(&panics),
        "{panics} panics for a limit of 3"
    );
    // Not redelivered forever: the work queue is empty and stays so.
    env.wait_for_ready(0, WAIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        metric(
            &env.worker_metrics().await,
            "callq_worker_handler_panics_total"
        ),
        panics
    );
}

#[tokio::test]
async fn a_call_the_database_refuses_is_set_aside_and_not_retried() {
    let mut env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    sqlx::query("ALTER TABLE calls ADD CONSTRAINT refuse_one CHECK (uid <> 'refused-1')")
        .execute(&env.pool)
        .await
        .unwrap();
    // Queued before the worker starts, so that all three land in one batch, which the
    // database refuses as a whole: the worker must find the one call at fault.
    for uid in ["fine-1", "refused-1", "fine-2"] {
        assert_eq!(env.post(&integration, &call(uid)).await.status(), 202);
    }
    env.wait_for_ready(3, WAIT).await;
    env.start_worker().await;
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters WHERE reason = 'database_rejected'",
        1,
        WAIT,
    )
    .await;
    env.wait_for_count("SELECT count(*) FROM calls", 2, WAIT)
        .await;
    let detail: String = sqlx::query_scalar("SELECT detail FROM dead_letters")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert!(detail.contains("refuse_one"), "{detail}");
    assert_eq!(
        pipeline_tests::metric_sum(
            &env.worker_metrics().await,
            "callq_worker_calls_retried_total"
        ),
        0.0
    );
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
