//! A call posted to the gateway lands as a row, with everything the contract says.

use std::time::Duration;

use pipeline_tests::{call, seed_example, TestEnv};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn the_pages_example_lands_with_the_operators_department_the_client_and_custom_fields() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;

    let response = env.post(&integration, &seed_example()).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["id"], "7b2331ca-adcb-4f15-811b-6b6cfddb2baf");
    assert_eq!(body["data"]["type"], "phone_calls");
    let attributes = &body["data"]["attributes"];
    assert_eq!(attributes["status"], "queued");
    assert_eq!(attributes["uid_derived"], false);
    assert!(attributes["ingest_id"]
        .as_str()
        .unwrap()
        .parse::<uuid::Uuid>()
        .is_ok());
    assert!(attributes["received_at"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .is_ok());

    env.wait_for_count("SELECT count(*) FROM calls", 1, WAIT)
        .await;
    let row: (String, String, f64, String, String, Value, String) = sqlx::query_as(
        "SELECT d.name, c.direction, c.duration, c.client_phone_number,
                to_char(c.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS'), c.custom_fields, cl.company_name
         FROM calls c JOIN departments d ON d.id = c.department_id JOIN clients cl ON cl.id = c.client_id",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(row.0, "Support");
    assert_eq!(row.1, "incoming");
    assert_eq!(row.2, 410.1);
    assert_eq!(row.3, "+375332222453");
    assert_eq!(row.4, "2020-06-21T06:51:13.588", "Z+03 is read as +03:00");
    assert_eq!(
        row.5,
        json!({"opened_at": "2020-06-21T09:51:13.588Z", "reopen_count": 5, "topic": "Поддержка", "sub-topic": "Возобновление доступа"})
    );
    assert_eq!(row.6, "Test Company");

    let (status, doc) = env
        .get_call(&integration, "7b2331ca-adcb-4f15-811b-6b6cfddb2baf")
        .await;
    assert_eq!(status, 200);
    assert_eq!(doc["data"]["attributes"]["status"], "stored");
    assert_eq!(doc["data"]["attributes"]["department"], "Support");
    assert_eq!(
        doc["data"]["attributes"]["client"]["id"],
        "client@email.com"
    );
    let types: Vec<(String, String)> =
        sqlx::query_as("SELECT key, field_type FROM custom_field_definitions ORDER BY key")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(
        types,
        [
            ("opened_at", "datetime"),
            ("reopen_count", "number"),
            ("sub-topic", "string"),
            ("topic", "string")
        ]
        .map(|(k, t)| (k.to_owned(), t.to_owned()))
    );
}

#[tokio::test]
async fn every_time_format_of_the_contract_is_accepted_and_read_as_the_same_instant() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let formats = [
        ("2019-08-09T18:31:42+03", "2019-08-09T15:31:42.000"),
        ("2019-08-09T18:31:42+0300", "2019-08-09T15:31:42.000"),
        ("2019-08-09T18:31:42+03:00", "2019-08-09T15:31:42.000"),
        ("2019-08-09T15:31:42Z", "2019-08-09T15:31:42.000"),
        ("2019-08-09T15:31:42.5Z", "2019-08-09T15:31:42.500"),
        (
            "2019-08-09T18:31:42.123456+03:00",
            "2019-08-09T15:31:42.123",
        ),
        ("2019-08-09T18:31:42.588Z+03", "2019-08-09T15:31:42.588"),
    ];
    for (i, (format, _)) in formats.iter().enumerate() {
        let mut body = call(&format!("t{i}"));
        body["started_at"] = json!(format);
        assert_eq!(
            env.post(&integration, &body).await.status(),
            202,
            "{format}"
        );
    }
    env.wait_for_count("SELECT count(*) FROM calls", formats.len() as i64, WAIT)
        .await;
    for (i, (format, expected)) in formats.iter().enumerate() {
        let stored: String = sqlx::query_scalar(
            "SELECT to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS') FROM calls WHERE uid = $1",
        )
        .bind(format!("t{i}"))
        .fetch_one(&env.pool)
        .await
        .unwrap();
        assert_eq!(&stored, expected, "{format}");
    }
}

#[tokio::test]
async fn every_optional_field_is_stored() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let body = json!({
        "operator_id": "operator@email.com",
        "started_at": "2024-03-01T10:00:00+03",
        "media_url": "https://recordings.invalid/x.wav",
        "uid": "full",
        "direction": "outgoing",
        "duration": "12.5",
        "phone_call_chain_uid": "chain-1",
        "client_phone_number": "+70000000000",
        "nps": 9,
        "metacontent": {"languages": ["ru", "by"], "cars_index": [175, 998], "is_active_discount": "true", "logo_link": "https://x.org/a.png"},
        "transcription": [
            {"text": "Здравствуйте", "start_time": 0, "end_time": 1.5, "role": "operator"},
            {"text": "Добрый день", "start_time": 1.2, "end_time": 2.0, "role": "client"}
        ]
    });
    assert_eq!(env.post(&integration, &body).await.status(), 202);
    env.wait_for_count("SELECT count(*) FROM calls", 1, WAIT)
        .await;
    let row: (String, f64, String, f64, Value, Value, Option<uuid::Uuid>) = sqlx::query_as(
        "SELECT direction, duration, phone_call_chain_uid, nps, custom_fields, transcription, client_id FROM calls",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        row.0, "outcoming",
        "outgoing is stored in the API's spelling"
    );
    assert_eq!(row.1, 12.5);
    assert_eq!(row.2, "chain-1");
    assert_eq!(row.3, 9.0);
    assert_eq!(
        row.4,
        json!({"languages": ["ru", "by"], "cars_index": [175, 998], "is_active_discount": true, "logo_link": "https://x.org/a.png"})
    );
    assert_eq!(row.5[1]["role"], "client");
    assert_eq!(row.5[0]["end_time"], 1.5);
    assert_eq!(row.6, None, "no client given, no client row");
    let types: Vec<String> =
        sqlx::query_scalar("SELECT field_type FROM custom_field_definitions ORDER BY key")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(
        types,
        ["number_array", "boolean", "string_array", "string_url"]
    );
}

#[tokio::test]
async fn an_integration_set_to_200_answers_200() {
    let env = TestEnv::start().await;
    let integration = env.integration_with_status(200).await;
    assert_eq!(env.post(&integration, &call("a")).await.status(), 200);
}

#[tokio::test]
async fn a_bearer_token_is_accepted_like_a_raw_one() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let response = env
        .http
        .post(&integration.url)
        .header("Authorization", format!("Bearer {}", integration.token))
        .json(&call("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn a_custom_field_keeps_the_type_of_its_first_value() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let mut first = call("a");
    first["custom_fields"] = json!({"answer_time": 120});
    assert_eq!(env.post(&integration, &first).await.status(), 202);

    let mut second = call("b");
    second["custom_fields"] = json!({"answer_time": "two minutes"});
    let response = env.post(&integration, &second).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["source"]["pointer"],
        "/custom_fields/answer_time"
    );
    assert!(body["errors"][0]["fields"]["custom_fields.answer_time"][0]
        .as_str()
        .unwrap()
        .contains("number"));
}

#[tokio::test]
async fn get_says_queued_before_a_worker_stores_the_call() {
    let env = TestEnv::start_with(pipeline_tests::Options {
        worker: false,
        customize: Box::new(|s| s.http.queued_notes = true),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    assert_eq!(env.post(&integration, &call("waiting")).await.status(), 202);
    let doc = pipeline_tests::eventually(WAIT, || async {
        let (status, doc) = env.get_call(&integration, "waiting").await;
        if status == 200 {
            Ok(doc)
        } else {
            Err(status)
        }
    })
    .await
    .expect("GET answers 200 once the queued note is written");
    assert_eq!(doc["data"]["attributes"]["status"], "queued");
    assert_eq!(env.get_call(&integration, "never-sent").await.0, 404);
}

#[tokio::test]
async fn without_queued_notes_get_finds_a_call_once_it_is_stored() {
    let mut env = TestEnv::start_with(pipeline_tests::Options {
        worker: false,
        customize: Box::new(|s| s.http.queued_notes = false),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    assert_eq!(env.post(&integration, &call("unnoted")).await.status(), 202);
    env.wait_for_ready(1, WAIT).await;
    let (status, doc) = env.get_call(&integration, "unnoted").await;
    assert_eq!(status, 404);
    assert!(doc["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("once a worker has stored it"));
    assert_eq!(env.count("SELECT count(*) FROM queued_calls").await, 0);

    env.start_worker().await;
    env.wait_for_count("SELECT count(*) FROM calls", 1, WAIT)
        .await;
    assert_eq!(env.get_call(&integration, "unnoted").await.0, 200);
}

/// `calls` has no foreign keys (migration 0004): what it points at is kept by refusing to
/// delete it, or to change its id.
#[tokio::test]
async fn what_a_stored_call_points_at_cannot_be_deleted_from_under_it() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    assert_eq!(env.post(&integration, &seed_example()).await.status(), 202);
    env.wait_for_count("SELECT count(*) FROM calls", 1, WAIT)
        .await;

    for statement in [
        "DELETE FROM users WHERE id = (SELECT user_id FROM calls)",
        "DELETE FROM departments WHERE id = (SELECT department_id FROM calls)",
        "DELETE FROM clients WHERE id = (SELECT client_id FROM calls)",
        "DELETE FROM integrations WHERE id = (SELECT integration_id FROM calls)",
        "DELETE FROM organisations WHERE id = (SELECT organisation_id FROM calls)",
        "TRUNCATE users CASCADE",
        "UPDATE users SET id = gen_random_uuid() WHERE id = (SELECT user_id FROM calls)",
    ] {
        let error = sqlx::query(statement)
            .execute(&env.pool)
            .await
            .expect_err(statement);
        let error = error.as_database_error().expect("a database error");
        assert_eq!(
            error.code().as_deref(),
            Some("23001"),
            "{statement}: {error}"
        );
        assert!(error.message().contains("never deleted"), "{error}");
    }

    let attached = env
        .count(
            "SELECT count(*) FROM calls c
             JOIN users u ON u.id = c.user_id JOIN departments d ON d.id = c.department_id
             JOIN clients cl ON cl.id = c.client_id JOIN integrations i ON i.id = c.integration_id
             JOIN organisations o ON o.id = c.organisation_id",
        )
        .await;
    assert_eq!(attached, 1);
    let renamed = sqlx::query("UPDATE users SET first_name = 'Renamed'")
        .execute(&env.pool)
        .await
        .expect("other columns still change");
    assert_eq!(renamed.rows_affected(), 1);
}
