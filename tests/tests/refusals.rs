//! Every 4xx the gateway gives, and that none of them queues anything.

use pipeline_tests::{call, Options, TestEnv};
use serde_json::{json, Value};

/// No worker: a refused call must leave the work queue empty.
async fn env() -> TestEnv {
    TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await
}

fn error_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| {
            e["fields"]
                .as_object()
                .map(|f| f.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401() {
    let env = env().await;
    let integration = env.integration().await;
    let missing = env
        .http
        .post(&integration.url)
        .json(&call("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    let wrong = env
        .http
        .post(&integration.url)
        .header("Authorization", "0b23ffc3e579f863288f4462c8")
        .json(&call("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["errors"][0]["status"], 401);
}

#[tokio::test]
async fn a_valid_token_on_another_integrations_url_is_401() {
    let env = env().await;
    let mine = env.integration().await;
    let theirs = env.integration().await;
    let response = env
        .http
        .post(&theirs.url)
        .header("Authorization", &mine.token)
        .json(&call("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let get = env
        .http
        .get(format!("{}/a", theirs.url))
        .header("Authorization", &mine.token)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 401);
}

#[tokio::test]
async fn an_unknown_integration_is_404() {
    let env = env().await;
    let integration = env.integration().await;
    for id in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".into()] {
        let url = format!("{}/api/v1/integrations/{id}/phone_calls", env.base_url);
        let response = env
            .http
            .post(url)
            .header("Authorization", &integration.token)
            .json(&call("a"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{id}");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let env = env().await;
    let integration = env.integration().await;
    let mut body = call("big");
    body["custom_fields"] = json!({"notes": "x".repeat(2 * 1024 * 1024)});
    let response = env.post(&integration, &body).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["status"], 413);
    assert_eq!(env.ready_count().await, 0);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let env = env().await;
    let integration = env.integration().await;
    let not_json = env
        .http
        .post(&integration.url)
        .header("Authorization", &integration.token)
        .header("Content-Type", "application/json")
        .body("operator_id=1&started_at=now")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    let form = env
        .http
        .post(&integration.url)
        .header("Authorization", &integration.token)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("operator_id=1")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    let body: Value = form.json().await.unwrap();
    assert!(body["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("application/json"));
}

#[tokio::test]
async fn one_422_lists_every_bad_field_and_nothing_is_queued() {
    let env = env().await;
    let integration = env.integration().await;
    let response = env
        .post(
            &integration,
            &json!({
                "started_at": "2019-08-09T18:31:42",
                "media_url": "not a url",
                "direction": "sideways",
                "duration": -3,
                "nps": "high",
                "client": {"id": ""},
                "custom_fields": {"nested": {"a": 1}},
                "transcription": [{"text": "hi", "start_time": 3, "end_time": 1, "role": "robot"}],
            }),
        )
        .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let mut fields = error_fields(&body);
    fields.sort();
    assert_eq!(
        fields,
        [
            "client.id",
            "custom_fields.nested",
            "direction",
            "duration",
            "media_url",
            "nps",
            "operator_id",
            "started_at",
            "transcription[0].end_time",
            "transcription[0].role",
        ]
    );
    let started = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["source"]["pointer"] == "/started_at")
        .unwrap();
    assert_eq!(
        started["detail"],
        "started_at must include a time zone, e.g. 2019-08-09T18:31:42+03"
    );
    assert_eq!(started["code"], "unprocessable_entity");
    assert_eq!(started["title"], "Error in request processing");
    assert_eq!(env.ready_count().await, 0);
}

#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_422() {
    let env = env().await;
    let integration = env.integration().await;
    assert_eq!(
        env.post(&integration, &json!(["operator_id"]))
            .await
            .status(),
        422
    );
}

#[tokio::test]
async fn custom_fields_and_metacontent_together_are_422() {
    let env = env().await;
    let integration = env.integration().await;
    let mut body = call("a");
    body["custom_fields"] = json!({"a": 1});
    body["metacontent"] = json!({"b": 1});
    let response = env.post(&integration, &body).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        error_fields(&response.json().await.unwrap()),
        ["metacontent"]
    );
}

#[tokio::test]
async fn an_integration_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    // One call per 100 s after a burst of two: the third call is over the rate however slow
    // the machine is.
    let env = TestEnv::start_with(Options {
        worker: false,
        customize: Box::new(|s| {
            s.http.rate_limit_per_sec = 0.01;
            s.http.rate_limit_burst = 2;
        }),
        ..Default::default()
    })
    .await;
    let busy = env.integration().await;
    let quiet = env.integration().await;
    assert_eq!(env.post(&busy, &call("1")).await.status(), 202);
    assert_eq!(env.post(&busy, &call("2")).await.status(), 202);
    let refused = env.post(&busy, &call("3")).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=100).contains(&retry_after), "{retry_after}");
    assert_eq!(env.post(&quiet, &call("1")).await.status(), 202);
    // Three accepted, the refused one not queued.
    env.wait_for_ready(3, std::time::Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn a_request_that_stalls_mid_body_gets_the_contracts_503_within_the_request_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = TestEnv::start_with(Options {
        worker: false,
        customize: Box::new(|s| s.http.request_timeout_ms = 300),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let path = integration.url.trim_start_matches(&env.base_url).to_owned();
    let mut stream = tokio::net::TcpStream::connect(env.base_url.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"operator_id\":",
        integration.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await;
    assert!(read.is_ok(), "the gateway gave up on the stalled request");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("retry-after"), "{response}");
    assert!(response.contains(r#""status":503"#), "{response}");
}
