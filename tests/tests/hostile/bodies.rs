//! Request bodies: what Postgres would refuse is refused at the gateway, and every answer is
//! bounded however large the body's mistakes.

use pipeline_tests::{call, Integration, Options, TestEnv};
use serde_json::{json, Value};

/// No worker: a refused call must leave the work queue empty.
async fn env() -> TestEnv {
    TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await
}

/// The answer's status, its body, and its size in bytes.
async fn post_raw(env: &TestEnv, integration: &Integration, body: String) -> (u16, Value, usize) {
    let response = env
        .http
        .post(&integration.url)
        .header("Authorization", &integration.token)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("gateway answers");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("answer body");
    let document = serde_json::from_slice(&bytes).expect("a JSON answer");
    (status, document, bytes.len())
}

fn fields_of(document: &Value) -> Vec<String> {
    document["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["fields"].as_object())
        .flat_map(|f| f.keys().cloned())
        .collect()
}

#[tokio::test]
async fn a_nul_anywhere_is_a_422_naming_the_field_and_nothing_is_queued() {
    let env = env().await;
    let integration = env.integration().await;
    let cases: [(&str, fn(&mut Value)); 6] = [
        ("custom_fields.topic", |b| {
            b["custom_fields"] = json!({"topic": "bill\u{0}ing"})
        }),
        ("client.first_name", |b| b["client"]["first_name"] = json!("Jo\u{0}hn")),
        ("transcription[0].text", |b| {
            b["transcription"] =
                json!([{"text": "\u{0}", "start_time": 0, "end_time": 1, "role": "client"}])
        }),
        ("custom_fields.to\u{0}pic", |b| {
            b["custom_fields"] = json!({"to\u{0}pic": "billing"})
        }),
        ("operator_id", |b| b["operator_id"] = json!("op\u{0}@email.com")),
        ("custom_fields.langs", |b| {
            b["custom_fields"] = json!({"langs": ["ru", "b\u{0}y"]})
        }),
    ];
    for (field, mutate) in cases {
        let mut body = call("nul");
        mutate(&mut body);
        let (status, document, _) = post_raw(&env, &integration, body.to_string()).await;
        assert_eq!(status, 422, "{field}: {document}");
        assert_eq!(fields_of(&document), [field], "{document}");
        let detail = document["errors"][0]["detail"].as_str().unwrap();
        assert!(detail.contains("\\u0000"), "{detail}");
    }
    assert_eq!(env.ready_count().await, 0);
    assert_eq!(
        env.count("SELECT count(*) FROM custom_field_definitions")
            .await,
        0
    );
}

#[tokio::test]
async fn a_year_postgres_cannot_store_is_a_422() {
    let env = env().await;
    let integration = env.integration().await;
    let mut body = call("far-future");
    body["started_at"] = json!("+200000-01-01T00:00:00Z");
    let (status, document, _) = post_raw(&env, &integration, body.to_string()).await;
    assert_eq!(status, 422);
    assert_eq!(fields_of(&document), ["started_at"]);
    assert_eq!(env.ready_count().await, 0);
}

#[tokio::test]
async fn three_hundred_thousand_empty_phrases_get_one_small_error() {
    let env = env().await;
    let integration = env.integration().await;
    let mut body = call("phrases").to_string();
    body.pop();
    body.push_str(",\"transcription\":[");
    body.push_str(&vec!["{}"; 300_000].join(","));
    body.push_str("]}");
    let (status, document, size) = post_raw(&env, &integration, body).await;
    assert_eq!(status, 422);
    assert_eq!(fields_of(&document), ["transcription"]);
    assert!(
        document["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("limits.max_phrases"),
        "{document}"
    );
    assert!(size < 2_000, "the answer is {size} bytes");
}

#[tokio::test]
async fn an_answer_lists_a_hundred_errors_and_counts_the_rest() {
    let env = env().await;
    let integration = env.integration().await;
    let mut body = call("many-errors");
    body["transcription"] = Value::Array(vec![json!({}); 1000]);
    let (status, document, _) = post_raw(&env, &integration, body.to_string()).await;
    assert_eq!(status, 422);
    assert_eq!(document["errors"].as_array().unwrap().len(), 100);
    assert_eq!(document["meta"]["omitted_errors"], json!(3900));
}

#[tokio::test]
async fn fifty_thousand_new_keys_are_refused_and_define_nothing() {
    let env = env().await;
    let integration = env.integration().await;
    let mut body = call("many-keys");
    body["custom_fields"] = (0..50_000)
        .map(|i| (format!("k{i}"), json!(i)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let (status, document, _) = post_raw(&env, &integration, body.to_string()).await;
    assert_eq!(status, 422);
    assert_eq!(fields_of(&document), ["custom_fields"]);
    assert!(document["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("limits.max_custom_fields"));
    assert_eq!(
        env.count("SELECT count(*) FROM custom_field_definitions")
            .await,
        0
    );
    assert_eq!(env.ready_count().await, 0);
}

#[tokio::test]
async fn a_key_too_long_to_index_is_refused() {
    let env = env().await;
    let integration = env.integration().await;
    let mut body = call("long-key");
    body["custom_fields"] = json!({ "я".repeat(2000): 1 });
    let (status, document, _) = post_raw(&env, &integration, body.to_string()).await;
    assert_eq!(status, 422, "{document}");
    assert!(document["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("limits.max_key_chars"));
}

#[tokio::test]
async fn an_organisation_cannot_pass_its_field_definitions() {
    let env = TestEnv::start_with(Options {
        worker: false,
        customize: Box::new(|s| s.limits.max_field_definitions = 3),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let mut first = call("defs-1");
    first["custom_fields"] = json!({"a": 1, "b": "x"});
    let (status, _, _) = post_raw(&env, &integration, first.to_string()).await;
    assert_eq!(status, 202);

    let mut over = call("defs-2");
    over["custom_fields"] = json!({"a": 2, "c": true, "d": "y"});
    let (status, document, _) = post_raw(&env, &integration, over.to_string()).await;
    assert_eq!(status, 422, "{document}");
    assert_eq!(fields_of(&document), ["custom_fields.c", "custom_fields.d"]);
    assert!(document["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("limits.max_field_definitions"));
    assert_eq!(
        env.count("SELECT count(*) FROM custom_field_definitions")
            .await,
        2
    );

    // Known keys and one more new key up to the bound still pass.
    let mut fits = call("defs-3");
    fits["custom_fields"] = json!({"a": 3, "b": "z", "c": false});
    let (status, _, _) = post_raw(&env, &integration, fits.to_string()).await;
    assert_eq!(status, 202);
    assert_eq!(env.ready_count().await, 2);
}
