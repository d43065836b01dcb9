//! The per-integration switches for clients written against the real API, set on an
//! existing integration: 200 instead of 202, and the Qolio-compatible 422 for a call or text
//! of an unknown or inactive operator (with the real API's message), which a client repairs
//! by importing the binding and posting again.

use std::process::Command;
use std::time::Duration;

use pipeline_tests::{call, child_env, eventually, Integration, TestEnv};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const QOLIO_MESSAGE: &str = "Необходимо, чтобы был определен активный оператор";

fn chat(uid: &str, operator_id: &str) -> Value {
    json!({
        "uid": uid,
        "operator_id": operator_id,
        "communication_type": "chat",
        "communication_parts": [{
            "communication_part_id": format!("{uid}-1"),
            "author": {"type": "client", "id": null},
            "body": "Здравствуйте",
            "created_at": "2024-05-01T12:00:00+03:00",
        }],
    })
}

async fn post(env: &TestEnv, integration: &Integration, path: &str, body: &Value) -> (u16, Value) {
    let url = integration.url.replace("/phone_calls", path);
    let response = env
        .http
        .post(url)
        .header("Authorization", &integration.token)
        .json(body)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Posts until the gateway answers `expected` (its integration cache refreshes within
/// auth.cache_ttl_secs), returning that answer.
async fn post_until(
    env: &TestEnv,
    integration: &Integration,
    path: &str,
    body: &Value,
    expected: u16,
) -> Value {
    eventually(WAIT, || async {
        let (status, doc) = post(env, integration, path, body).await;
        if status == expected {
            Ok(doc)
        } else {
            Err((status, doc))
        }
    })
    .await
    .unwrap_or_else(|last| panic!("never answered {expected}; last {last:?}"))
}

#[tokio::test]
async fn an_existing_integration_set_by_the_cli_answers_200_for_calls_and_texts() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    assert_eq!(
        post(&env, &integration, "/phone_calls", &call("c-1"))
            .await
            .0,
        202
    );
    assert_eq!(
        post(
            &env,
            &integration,
            "/text",
            &chat("t-1", "operator@email.com")
        )
        .await
        .0,
        202
    );

    let id = integration.id.to_string();
    let output = Command::new(pipeline_tests::binary("admin"))
        .envs(child_env(&env))
        .args(["integration", "set", &id, "--answer-200"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("200"));

    let output = Command::new(pipeline_tests::binary("admin"))
        .envs(child_env(&env))
        .args(["integration", "set", &id, "--qolio-compatible"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let output = Command::new(pipeline_tests::binary("admin"))
        .envs(child_env(&env))
        .args(["integration", "show", &id, "--json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["qolio_compatible"], true, "{shown}");
    assert_eq!(shown["success_status"], 200, "{shown}");

    post_until(&env, &integration, "/phone_calls", &call("c-1"), 200).await;
    post_until(
        &env,
        &integration,
        "/text",
        &chat("t-1", "operator@email.com"),
        200,
    )
    .await;
    env.wait_for_count("SELECT count(*) FROM text_communications", 1, WAIT)
        .await;
}

#[tokio::test]
async fn an_integration_made_qolio_compatible_by_the_admin_api_refuses_unknown_operators() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    env.bind(
        integration.id,
        &[
            ("operator@email.com", "operator@email.com", true),
            ("gone@email.com", "gone@email.com", false),
        ],
    )
    .await;
    let patched = env
        .http
        .patch(format!(
            "{}/api/v1/api_integrations/{}",
            env.base_url, integration.id
        ))
        .header("Authorization", &env.admin_token)
        .json(&json!({"data": {"attributes": {"qolio_compatible": true}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["data"]["attributes"]["qolio_compatible"], true);

    let mut ghost_call = call("ghost-call");
    ghost_call["operator_id"] = json!("ghost@email.com");
    let doc = post_until(&env, &integration, "/phone_calls", &ghost_call, 422).await;
    let detail = doc["errors"][0]["detail"].as_str().unwrap();
    assert!(detail.starts_with("operator_id "), "{detail}");
    assert!(detail.contains(QOLIO_MESSAGE), "{detail}");
    for (path, body) in [
        ("/text", chat("ghost-chat", "ghost@email.com")),
        ("/text", chat("gone-chat", "gone@email.com")),
        ("/phone_calls", {
            let mut gone = call("gone-call");
            gone["operator_id"] = json!("gone@email.com");
            gone
        }),
    ] {
        let (status, doc) = post(&env, &integration, path, &body).await;
        assert_eq!(status, 422, "{path} {doc}");
        assert!(doc.to_string().contains(QOLIO_MESSAGE), "{doc}");
    }
    // Clients search the raw answer for the sentence, as it is, not JSON-escaped.
    let raw = env
        .http
        .post(integration.url.replace("/phone_calls", "/text"))
        .header("Authorization", &integration.token)
        .json(&chat("ghost-chat", "ghost@email.com"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raw.contains(QOLIO_MESSAGE), "{raw}");
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 0);

    // A known operator is unaffected.
    assert_eq!(
        post(
            &env,
            &integration,
            "/text",
            &chat("ok-chat", "operator@email.com")
        )
        .await
        .0,
        202
    );

    // The client repairs itself: imports the binding and posts again, accepted at once.
    env.bind(
        integration.id,
        &[
            ("operator@email.com", "operator@email.com", true),
            ("ghost@email.com", "ghost@email.com", true),
        ],
    )
    .await;
    assert_eq!(
        post(&env, &integration, "/phone_calls", &ghost_call)
            .await
            .0,
        202
    );
    assert_eq!(
        post(
            &env,
            &integration,
            "/text",
            &chat("ghost-chat", "ghost@email.com")
        )
        .await
        .0,
        202
    );
    env.wait_for_count("SELECT count(*) FROM text_communications", 2, WAIT)
        .await;
    env.wait_for_count(
        "SELECT count(*) FROM calls WHERE uid = 'ghost-call'",
        1,
        WAIT,
    )
    .await;
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 0);
}
