//! `admin erase`: an organisation's or one client's calls, clients and dead letters removed
//! on request, counted first by a dry run; nobody else's rows touched.

use std::process::Command;
use std::time::Duration;

use pipeline_tests::{call, child_env, Integration, TestEnv};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

fn erase(env: &TestEnv, args: &[&str]) -> String {
    let out = Command::new(pipeline_tests::binary("admin"))
        .envs(child_env(env))
        .arg("erase")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A stored call and a dead letter (unknown operator) for each client, in `integration`.
async fn calls_for(env: &TestEnv, integration: &Integration, prefix: &str, clients: &[&str]) {
    for client in clients {
        let mut body = call(&format!("{prefix}-{client}"));
        body["client"] = json!({"id": client, "last_name": "Doe"});
        assert_eq!(env.post(integration, &body).await.status(), 202);
        body["uid"] = json!(format!("{prefix}-{client}-lost"));
        body["operator_id"] = json!("nobody@email.com");
        assert_eq!(env.post(integration, &body).await.status(), 202);
    }
}

async fn rows(env: &TestEnv, sql: &str, organisation: uuid::Uuid) -> Vec<String> {
    sqlx::query_scalar(sql)
        .bind(organisation)
        .fetch_all(&env.pool)
        .await
        .unwrap()
}

const CALLS: &str = "SELECT uid FROM calls WHERE organisation_id = $1 ORDER BY uid";
const KEYS: &str = "SELECT k.uid FROM call_keys k JOIN integrations i ON i.id = k.integration_id
                    WHERE i.organisation_id = $1 ORDER BY k.uid";
const CLIENTS: &str = "SELECT external_id FROM clients WHERE organisation_id = $1 ORDER BY 1";
const LETTERS: &str =
    "SELECT d.uid FROM dead_letters d JOIN integrations i ON i.id = d.integration_id
                       WHERE i.organisation_id = $1 ORDER BY d.uid";

#[tokio::test]
async fn a_client_then_its_organisation_are_erased_and_nobody_else() {
    let env = TestEnv::start().await;
    let a = env.integration().await;
    let b = env.integration().await;
    calls_for(&env, &a, "a", &["c1", "c2"]).await;
    calls_for(&env, &b, "b", &["c1"]).await;
    env.wait_for_count("SELECT count(*) FROM calls", 3, WAIT)
        .await;
    env.wait_for_count("SELECT count(*) FROM dead_letters", 3, WAIT)
        .await;
    let org = a.organisation_id.to_string();
    let others = (
        rows(&env, CALLS, b.organisation_id).await,
        rows(&env, CLIENTS, b.organisation_id).await,
        rows(&env, LETTERS, b.organisation_id).await,
    );

    let said = erase(
        &env,
        &["--organisation", &org, "--client", "c1", "--dry-run"],
    );
    assert_eq!(
        said,
        "found 1 call(s), 0 text(s), 1 client(s), 1 dead letter(s), 0 queued note(s)\n"
    );
    assert_eq!(rows(&env, CALLS, a.organisation_id).await, ["a-c1", "a-c2"]);

    let said = erase(&env, &["--organisation", &org, "--client", "c1"]);
    assert!(
        said.ends_with(
            "erased 1 call(s), 0 text(s), 1 client(s), 1 dead letter(s), 0 queued note(s)\n"
        ),
        "{said}"
    );
    assert_eq!(rows(&env, CALLS, a.organisation_id).await, ["a-c2"]);
    assert_eq!(rows(&env, KEYS, a.organisation_id).await, ["a-c2"]);
    assert_eq!(rows(&env, CLIENTS, a.organisation_id).await, ["c2"]);
    assert_eq!(rows(&env, LETTERS, a.organisation_id).await, ["a-c2-lost"]);
    assert_eq!(env.get_call(&a, "a-c1").await.0, 404);
    assert_eq!(env.get_call(&a, "a-c2").await.0, 200);

    let said = erase(&env, &["--organisation", &org, "--dry-run"]);
    assert!(
        said.starts_with("found 1 call(s), 0 text(s), 1 client(s), 1 dead letter(s)"),
        "{said}"
    );
    erase(&env, &["--organisation", &org]);
    for sql in [CALLS, KEYS, CLIENTS, LETTERS] {
        assert!(rows(&env, sql, a.organisation_id).await.is_empty(), "{sql}");
    }

    assert_eq!(
        (
            rows(&env, CALLS, b.organisation_id).await,
            rows(&env, CLIENTS, b.organisation_id).await,
            rows(&env, LETTERS, b.organisation_id).await,
        ),
        others
    );
    assert_eq!(rows(&env, KEYS, b.organisation_id).await, ["b-c1"]);
    assert_eq!(env.get_call(&b, "b-c1").await.0, 200);
}

#[tokio::test]
async fn a_kept_message_that_is_not_json_is_erased_with_its_organisation() {
    let env = TestEnv::start().await;
    let a = env.integration().await;
    let b = env.integration().await;
    for (integration, text) in [(&a, "a"), (&b, "b")] {
        let message = format!(
            "not json, but it names {} and client \"c1\"",
            integration.organisation_id
        );
        sqlx::query(
            "INSERT INTO dead_letters (id, ingest_id, reason, detail, message, message_encoding)
             VALUES (gen_random_uuid(), gen_random_uuid(), 'undecodable', $1, to_jsonb($2::text), 'text')",
        )
        .bind(text)
        .bind(&message)
        .execute(&env.pool)
        .await
        .unwrap();
    }

    let org = a.organisation_id.to_string();
    let said = erase(&env, &["--organisation", &org, "--client", "c1"]);
    assert!(
        said.ends_with(
            "erased 0 call(s), 0 text(s), 0 client(s), 1 dead letter(s), 0 queued note(s)\n"
        ),
        "{said}"
    );
    let left: Vec<String> = sqlx::query_scalar("SELECT detail FROM dead_letters")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(left, ["b"]);
}
