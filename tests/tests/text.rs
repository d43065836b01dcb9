//! Text communications (chats, tickets, emails) at POST/GET .../text: stored with their parts
//! as public client code posts them, updated as a chat grows, refused with every bad field
//! at once, and set aside and replayed like calls when their operator is unknown.

use std::time::Duration;

use pipeline_tests::{Integration, TestEnv};
use serde_json::{json, Value};
use shared::store::erasure::{self, Subject};

const WAIT: Duration = Duration::from_secs(30);

fn text_url(integration: &Integration) -> String {
    integration.url.replace("/phone_calls", "/text")
}

async fn post_text(env: &TestEnv, integration: &Integration, body: &Value) -> (u16, Value) {
    let response = env
        .http
        .post(text_url(integration))
        .header("Authorization", &integration.token)
        .json(body)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get_text(env: &TestEnv, integration: &Integration, uid: &str) -> (u16, Value) {
    let response = env
        .http
        .get(format!("{}/{uid}", text_url(integration)))
        .header("Authorization", &integration.token)
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn part(id: &str, author: Value, body: &str, at: &str) -> Value {
    json!({
        "communication_part_id": id,
        "author": author,
        "body": body,
        "created_at": at,
        "content_type": "text/plain",
    })
}

/// The shape a public Jivo connector posts (Newtonsoft's .NET dates with 7 fractional digits
/// and an offset, a client author with a null id, numbers for nps and client_feedback).
fn jivo_chat(uid: &str, parts: Vec<Value>) -> Value {
    json!({
        "uid": uid,
        "client_id": "58097722",
        "communication_type": "chat",
        "title": "Доставка",
        "source": "chat",
        "nps": 8,
        "client_feedback": 1,
        "custom_fields": {"chat_id": "c-1", "client_name": "Иван", "url": "https://shop.example/"},
        "status": "closed",
        "direction": "incoming",
        "started_at": "2024-05-01T12:00:00.1234567+05:00",
        "email": "+998901234567",
        "communication_parts": parts,
        "operator_id": "operator@email.com",
    })
}

fn client() -> Value {
    json!({"type": "client", "id": null})
}

fn operator() -> Value {
    json!({"type": "operator", "id": "operator@email.com"})
}

#[tokio::test]
async fn a_chat_is_stored_with_its_parts_and_updated_as_it_grows() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let first = vec![
        part(
            "p-1",
            client(),
            "Здравствуйте, где заказ?",
            "2024-05-01T12:00:05.1234567+05:00",
        ),
        part(
            "p-2",
            operator(),
            "Уточняю",
            "2024-05-01T12:00:30.0000000+05:00",
        ),
    ];
    let (status, doc) = post_text(&env, &integration, &jivo_chat("chat-1", first.clone())).await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!(doc["data"]["type"], "text_communications");
    assert_eq!(doc["data"]["id"], "chat-1");
    env.wait_for_count("SELECT count(*) FROM text_parts", 2, WAIT)
        .await;

    let row: (String, String, Option<f64>, Option<String>, String, bool) = sqlx::query_as(
        "SELECT t.communication_type, t.operator_id, t.nps, t.client_feedback, d.name,
                t.user_id = u.id
         FROM text_communications t JOIN departments d ON d.id = t.department_id
         JOIN users u ON lower(u.email) = 'operator@email.com'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            "chat".into(),
            "operator@email.com".into(),
            Some(8.0),
            Some("1".into()),
            "Support".into(),
            true
        )
    );

    // The same chat, grown by a part, with an earlier part edited.
    let mut grown = first;
    grown[1]["body"] = json!("Уточняю у склада");
    grown.push(part(
        "p-3",
        client(),
        "Спасибо",
        "2024-05-01T12:01:00+05:00",
    ));
    let (status, _) = post_text(&env, &integration, &jivo_chat("chat-1", grown)).await;
    assert_eq!(status, 202);
    env.wait_for_count("SELECT count(*) FROM text_parts", 3, WAIT)
        .await;
    env.wait_for_count(
        "SELECT count(*) FROM text_parts WHERE body = 'Уточняю у склада'",
        1,
        WAIT,
    )
    .await;
    assert_eq!(
        env.count("SELECT count(*) FROM text_communications").await,
        1
    );

    let (status, doc) = get_text(&env, &integration, "chat-1").await;
    assert_eq!(status, 200, "{doc}");
    let attributes = &doc["data"]["attributes"];
    assert_eq!(attributes["status"], "stored");
    assert_eq!(attributes["custom_fields"]["client_name"], "Иван");
    let parts = attributes["communication_parts"].as_array().unwrap();
    let ids: Vec<&str> = parts
        .iter()
        .map(|p| p["communication_part_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["p-1", "p-2", "p-3"]);
    assert_eq!(parts[0]["author"], json!({"type": "client", "id": null}));
    let created = parts[0]["created_at"].as_str().unwrap();
    assert!(
        created.starts_with("2024-05-01T07:00:05.12345"),
        "{created}"
    );
    assert_eq!(parts[1]["body"], "Уточняю у склада");
}

/// The shape of a public ticket exporter: `communication_id` for the uid, no `operator_id`
/// (the operator comes from the first operator-type author), `+0000` offsets, no content type.
#[tokio::test]
async fn a_ticket_without_operator_id_takes_its_operator_from_an_author() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let body = json!({
        "communication_id": "5b2cae5cb2682a976914c2a3",
        "communication_type": "ticket",
        "client_id": "user2_id",
        "direction": "incoming",
        "custom_fields": {"dialog_line": "first"},
        "communication_parts": [
            {"author": {"id": "user007", "type": "client"}, "body": "Привет!",
             "created_at": "2018-05-07T12:35:05+0000", "communication_part_id": "000000000000000000000000"},
            {"author": {"id": "operator@email.com", "type": "operator"}, "body": "Здравствуй!",
             "created_at": "2018-05-07T12:35:10+0000", "communication_part_id": "000000000000000000000001"},
        ],
    });
    let (status, doc) = post_text(&env, &integration, &body).await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!(doc["data"]["id"], "5b2cae5cb2682a976914c2a3");
    env.wait_for_count("SELECT count(*) FROM text_parts", 2, WAIT)
        .await;
    let (status, doc) = get_text(&env, &integration, "5b2cae5cb2682a976914c2a3").await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(
        doc["data"]["attributes"]["operator_id"],
        "operator@email.com"
    );
    assert_eq!(doc["data"]["attributes"]["communication_type"], "ticket");
}

#[tokio::test]
async fn without_a_uid_a_growing_chat_keeps_one_derived_key() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let mut body = jivo_chat(
        "unused",
        vec![part("a", client(), "1", "2024-05-01T12:00:00Z")],
    );
    body.as_object_mut().unwrap().remove("uid");
    let (status, first) = post_text(&env, &integration, &body).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["data"]["attributes"]["uid_derived"], true);
    body["communication_parts"]
        .as_array_mut()
        .unwrap()
        .push(part("b", operator(), "2", "2024-05-01T12:00:09Z"));
    let (status, second) = post_text(&env, &integration, &body).await;
    assert_eq!(status, 202);
    assert_eq!(first["data"]["id"], second["data"]["id"]);
    env.wait_for_count("SELECT count(*) FROM text_parts", 2, WAIT)
        .await;
    assert_eq!(
        env.count("SELECT count(*) FROM text_communications WHERE uid_derived")
            .await,
        1
    );
}

#[tokio::test]
async fn a_bad_body_is_refused_naming_every_bad_field() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let body = json!({
        "operator_id": "operator@email.com",
        "started_at": "2024-05-01T12:00:00",
        "direction": "sideways",
        "nps": "high",
        "title": "a\u{0}b",
        "communication_parts": [
            {"author": {"type": "client"}, "body": "x", "created_at": "2024-05-01T12:00:00Z"},
            {"communication_part_id": "p", "author": {"type": "bot", "id": "b"}, "body": "x",
             "created_at": "2024-05-01T12:00:00Z"},
            {"communication_part_id": "p", "author": {"type": "client"}, "body": 5,
             "created_at": "yesterday"},
        ],
    });
    let (status, doc) = post_text(&env, &integration, &body).await;
    assert_eq!(status, 422, "{doc}");
    let fields: Vec<&str> = doc["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap().split(' ').next().unwrap())
        .collect();
    for expected in [
        "started_at",
        "direction",
        "nps",
        "title",
        "communication_parts[0].communication_part_id",
        "communication_parts[1].author.type",
        "communication_parts[2].communication_part_id",
        "communication_parts[2].body",
        "communication_parts[2].created_at",
    ] {
        assert!(fields.contains(&expected), "{expected} not in {fields:?}");
    }
    assert_eq!(
        env.count("SELECT count(*) FROM text_communications").await,
        0
    );
}

#[tokio::test]
async fn an_unknown_operators_chat_is_set_aside_and_replayed_once_bound() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let mut body = jivo_chat(
        "ghost-chat",
        vec![part("g-1", client(), "Алло", "2024-05-01T12:00:00Z")],
    );
    body["operator_id"] = json!("ghost@email.com");
    let (status, _) = post_text(&env, &integration, &body).await;
    assert_eq!(status, 202);
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters WHERE reason = 'operator_not_found'
           AND uid = 'ghost-chat' AND operator_id = 'ghost@email.com'",
        1,
        WAIT,
    )
    .await;
    let (status, doc) = get_text(&env, &integration, "ghost-chat").await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["data"]["attributes"]["status"], "dead_lettered");
    assert_eq!(
        env.count("SELECT count(*) FROM text_communications").await,
        0
    );

    env.bind(
        integration.id,
        &[
            ("operator@email.com", "operator@email.com", true),
            ("ghost@email.com", "ghost@email.com", true),
        ],
    )
    .await;
    env.wait_for_count("SELECT count(*) FROM text_parts", 1, WAIT)
        .await;
    let (status, doc) = get_text(&env, &integration, "ghost-chat").await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["data"]["attributes"]["status"], "stored");
    assert_eq!(doc["data"]["attributes"]["operator_id"], "ghost@email.com");
}

#[tokio::test]
async fn erasing_a_client_or_an_organisation_removes_their_texts_and_parts() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    for (uid, client_id) in [("t-a", "client-a"), ("t-b", "client-b")] {
        let mut body = jivo_chat(uid, vec![part(uid, client(), "x", "2024-05-01T12:00:00Z")]);
        body["client_id"] = json!(client_id);
        assert_eq!(post_text(&env, &integration, &body).await.0, 202);
    }
    env.wait_for_count("SELECT count(*) FROM text_parts", 2, WAIT)
        .await;
    let client_a = Subject::Client {
        organisation: integration.organisation_id,
        external_id: "client-a".into(),
    };
    assert_eq!(erasure::count(&env.pool, &client_a).await.unwrap().texts, 1);
    let erased = erasure::erase(&env.pool, &client_a, 100, |_| {})
        .await
        .unwrap();
    assert_eq!(erased.texts, 1);
    assert_eq!(
        env.count("SELECT count(*) FROM text_communications WHERE uid = 't-b'")
            .await,
        1
    );
    let organisation = Subject::Organisation(integration.organisation_id);
    erasure::erase(&env.pool, &organisation, 100, |_| {})
        .await
        .unwrap();
    assert_eq!(
        env.count("SELECT count(*) FROM text_communications").await,
        0
    );
    assert_eq!(env.count("SELECT count(*) FROM text_parts").await, 0);
}
