//! Integrations after creation: `admin integration list/show/set` and the integration admin
//! API (GET, PATCH), switching what a call's POST answers; `admin --version` and completions.

use std::process::{Command, Output};
use std::time::Duration;

use pipeline_tests::{call, child_env, eventually, Integration, Options, TestEnv};
use reqwest::Method;
use serde_json::{json, Value};

async fn env() -> TestEnv {
    TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await
}

fn admin(env: Option<&TestEnv>, args: &[&str]) -> Output {
    let mut command = Command::new(pipeline_tests::binary("admin"));
    if let Some(env) = env {
        command.envs(child_env(env));
    }
    command.args(args).output().unwrap()
}

/// The command's stdout, once it has succeeded.
fn stdout(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn post_status(env: &TestEnv, integration: &Integration, uid: &str) -> u16 {
    env.post(integration, &call(uid)).await.status().as_u16()
}

#[tokio::test]
async fn the_cli_switches_an_existing_integration_to_answer_200() {
    let env = env().await;
    let integration = env.integration().await;
    let id = integration.id.to_string();
    // Loaded into the gateway's auth cache as answering 202.
    assert_eq!(post_status(&env, &integration, "before").await, 202);

    let set = stdout(admin(
        Some(&env),
        &["integration", "set", &id, "--answer-200"],
    ));
    assert!(set.contains("success status: 200"), "{set}");
    let stored: i16 = sqlx::query_scalar("SELECT success_status FROM integrations WHERE id = $1")
        .bind(integration.id)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(stored, 200);
    // The tests' auth cache lives 1 s: the gateway answers 200 once it has refreshed.
    let mut n = 0;
    let answered = eventually(Duration::from_secs(5), || {
        n += 1;
        let uid = format!("after-{n}");
        let env = &env;
        let integration = &integration;
        async move {
            match post_status(env, integration, &uid).await {
                200 => Ok(()),
                other => Err(other),
            }
        }
    })
    .await;
    assert_eq!(answered, Ok(()));

    let table = stdout(admin(Some(&env), &["integration", "list"]));
    let row = table
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} listed in:\n{table}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns[2..4], ["PBX", "200"], "{row}");
    assert!(table.lines().next().unwrap().starts_with("id "), "{table}");

    let listed: Value = serde_json::from_str(&stdout(admin(
        Some(&env),
        &["integration", "list", "--json"],
    )))
    .unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["success_status"], 200);
    assert_eq!(listed[0]["active_bindings"], 1);
    assert_eq!(
        listed[0]["organisation_id"],
        integration.organisation_id.to_string()
    );

    let shown: Value = serde_json::from_str(&stdout(admin(
        Some(&env),
        &["integration", "show", &id, "--json"],
    )))
    .unwrap();
    assert_eq!(shown["name"], "PBX");
    assert_eq!(shown["success_status"], 200);
    assert!(shown["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/api/v1/integrations/{id}/phone_calls")));
    let text = stdout(admin(Some(&env), &["integration", "show", &id]));
    assert!(
        text.contains("bindings:       1 active, 0 inactive"),
        "{text}"
    );

    let back = stdout(admin(
        Some(&env),
        &[
            "integration",
            "set",
            &id,
            "--answer-202",
            "--name",
            "Asterisk",
        ],
    ));
    assert!(back.contains("success status: 202"), "{back}");
    assert!(back.contains("name:           Asterisk"), "{back}");
}

#[tokio::test]
async fn the_cli_refuses_a_set_that_changes_nothing_or_names_no_integration() {
    let env = env().await;
    let integration = env.integration().await;
    let id = integration.id.to_string();

    let nothing = admin(Some(&env), &["integration", "set", &id]);
    assert!(!nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("--answer-200"));
    let both = admin(
        Some(&env),
        &["integration", "set", &id, "--answer-200", "--answer-202"],
    );
    assert!(!both.status.success());

    let unknown = uuid::Uuid::new_v4().to_string();
    let out = admin(
        Some(&env),
        &["integration", "set", &unknown, "--answer-200"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("no integration {unknown}")),
        "{stderr}"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM integrations WHERE success_status = 200")
            .await,
        0
    );
}

#[tokio::test]
async fn the_admin_api_lists_shows_and_patches_an_integration() {
    let env = env().await;
    let integration = env.integration().await;
    let path = format!("/api/v1/api_integrations/{}", integration.id);
    assert_eq!(post_status(&env, &integration, "before").await, 202);

    let patch = |body: Value| {
        env.http
            .patch(format!("{}{path}", env.base_url))
            .header("Authorization", &env.admin_token)
            .json(&body)
            .send()
    };
    let response = patch(json!({"data": {"attributes": {"success_status": 200}}}))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["id"], integration.id.to_string());
    assert_eq!(body["data"]["attributes"]["success_status"], 200);
    // This gateway dropped its cached entry: the next call already answers 200.
    assert_eq!(post_status(&env, &integration, "after").await, 200);

    let (status, shown) = env.admin(Method::GET, &path).await;
    assert_eq!(status, 200);
    assert_eq!(shown["data"]["attributes"]["success_status"], 200);
    assert_eq!(shown["data"]["attributes"]["name"], "PBX");
    let (status, listed) = env
        .admin(
            Method::GET,
            &format!(
                "/api/v1/api_integrations?organisation_id={}",
                integration.organisation_id
            ),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["meta"]["total"], 1);
    assert_eq!(listed["data"][0]["attributes"]["success_status"], 200);

    let refused = patch(json!({"data": {"attributes": {"success_status": 201}}}))
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["source"]["pointer"],
        "/data/attributes/success_status"
    );
    let empty = patch(json!({"data": {"attributes": {}}})).await.unwrap();
    assert_eq!(empty.status(), 422);

    let unauthorised = env
        .http
        .patch(format!("{}{path}", env.base_url))
        .header("Authorization", &integration.token)
        .json(&json!({"data": {"attributes": {"success_status": 202}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);
    let (status, _) = env
        .admin(
            Method::GET,
            &format!("/api/v1/api_integrations/{}", uuid::Uuid::new_v4()),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        env.count("SELECT count(*) FROM integrations WHERE success_status = 200")
            .await,
        1
    );
}

#[test]
fn the_cli_prints_its_version_and_shell_completions() {
    let version = stdout(admin(None, &["--version"]));
    assert!(
        version.starts_with(&format!("admin {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let bash = stdout(admin(None, &["completions", "bash"]));
    assert!(bash.contains("complete -F _admin"), "{bash}");
    assert!(bash.contains("--answer-200"), "every subcommand's flags");
    let zsh = stdout(admin(None, &["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef admin"), "{zsh}");
}

#[tokio::test]
async fn create_integration_answers_200_under_its_old_and_new_flag() {
    let env = env().await;
    let organisation = stdout(admin(
        Some(&env),
        &["create-organisation", "--name", "Acme"],
    ));
    for (name, flag) in [("old", "--respond-200"), ("new", "--answer-200")] {
        let created = stdout(admin(
            Some(&env),
            &[
                "create-integration",
                "--organisation",
                organisation.trim(),
                "--name",
                name,
                flag,
            ],
        ));
        assert!(created.contains("integration token:"), "{created}");
    }
    assert_eq!(
        env.count("SELECT count(*) FROM integrations WHERE success_status = 200")
            .await,
        2
    );
}
