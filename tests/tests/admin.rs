//! The binding admin API and the operators' CLI.

use std::process::Command;
use std::time::Duration;

use pipeline_tests::{call, child_env, eventually, Options, TestEnv};
use serde_json::{json, Value};

async fn env() -> TestEnv {
    TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await
}

fn admin_url(env: &TestEnv, integration_id: uuid::Uuid, path: &str) -> String {
    format!(
        "{}/api/v1/api_integrations/{integration_id}/{path}",
        env.base_url
    )
}

#[tokio::test]
async fn an_import_replaces_the_set_and_deactivates_what_it_leaves_out() {
    let env = env().await;
    let integration = env.integration().await;
    let response = env
        .http
        .put(admin_url(&env, integration.id, "import_user_account_bindings"))
        .header("Authorization", &env.admin_token)
        .json(&json!({"data": [
            {"email": "tel1@example.org", "first_name": "Иван", "last_name": "Буров", "integration_uid": "1", "department": "Sales"},
            {"email": "tel2@example.org", "first_name": "Анна", "last_name": "Ли", "integration_uid": "2", "active": false},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"], json!({"imported": 2, "deactivated": 1}));

    let active: Vec<(String, bool)> = sqlx::query_as(
        "SELECT integration_uid, active FROM user_account_bindings ORDER BY integration_uid",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        active,
        [("1", true), ("2", false), ("operator@email.com", false)].map(|(u, a)| (u.to_owned(), a))
    );
    let department: String = sqlx::query_scalar(
        "SELECT d.name FROM users u JOIN departments d ON d.id = u.department_id WHERE u.email = 'tel1@example.org'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(department, "Sales");

    let csv = env
        .http
        .get(admin_url(&env, integration.id, "user_account_bindings_csv"))
        .header("Authorization", format!("Bearer {}", env.admin_token))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert_eq!(
        csv.text().await.unwrap(),
        "email,first_name,last_name,integration_uid\ntel1@example.org,Иван,Буров,1\n"
    );
}

#[tokio::test]
async fn an_import_with_bad_rows_is_422_naming_each_row_and_changes_nothing() {
    let env = env().await;
    let integration = env.integration().await;
    let response = env
        .http
        .put(admin_url(
            &env,
            integration.id,
            "import_user_account_bindings",
        ))
        .header("Authorization", &env.admin_token)
        .json(&json!({"data": [
            {"email": "a@x.org", "integration_uid": "1"},
            {"first_name": "no email", "integration_uid": "2"},
            {"email": "c@x.org", "integration_uid": "1"},
            {"email": "d@x.org"},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let details: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        [
            "data[1].email is required",
            "data[2].integration_uid \"1\" is already used by data[0]",
            "data[3].integration_uid is required",
        ]
    );
    assert_eq!(body["errors"][0]["source"]["pointer"], "/data/1/email");
    assert_eq!(
        env.count("SELECT count(*) FROM user_account_bindings WHERE active")
            .await,
        1
    );
}

#[tokio::test]
async fn the_admin_api_needs_the_admin_token() {
    let env = env().await;
    let integration = env.integration().await;
    let url = admin_url(&env, integration.id, "user_account_bindings_csv");
    assert_eq!(env.http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        env.http
            .get(&url)
            .header("Authorization", &integration.token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let unknown = admin_url(&env, uuid::Uuid::new_v4(), "user_account_bindings_csv");
    assert_eq!(
        env.http
            .get(unknown)
            .header("Authorization", &env.admin_token)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

fn admin_cli(env: &TestEnv, args: &[&str]) -> std::process::Output {
    Command::new(pipeline_tests::binary("admin"))
        .envs(child_env(env))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_cli_refuses_a_bad_csv_naming_line_and_field() {
    let env = env().await;
    let integration = env.integration().await;
    let dir = std::env::temp_dir().join(format!("callq-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bindings.csv");
    let import = || {
        let id = integration.id.to_string();
        admin_cli(
            &env,
            &[
                "import-bindings",
                "--integration",
                &id,
                "--file",
                file.to_str().unwrap(),
            ],
        )
    };
    std::fs::write(&file, "email,first_name,last_name,integration_uid\ntel1@example.org,Иван,Буров,1\n,Пётр,Петров,2\ntel3@example.org,Анна,Ли,1\n").unwrap();

    let out = import();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3: email is required"), "{stderr}");
    assert!(
        stderr.contains("line 4: integration_uid \"1\" is already used by line 2"),
        "{stderr}"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM users").await,
        1,
        "nothing imported"
    );

    std::fs::write(
        &file,
        "email,first_name,last_name,integration_uid\ntel1@example.org,Иван,Буров,1\n",
    )
    .unwrap();
    let out = import();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "imported 1 binding(s), deactivated 1\n"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_cli_creates_an_integration_whose_token_works_until_rotated() {
    let env = env().await;
    let organisation =
        String::from_utf8(admin_cli(&env, &["create-organisation", "--name", "Acme"]).stdout)
            .unwrap();
    let organisation = organisation.trim();
    let out = admin_cli(
        &env,
        &[
            "create-integration",
            "--organisation",
            organisation,
            "--name",
            "Asterisk",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    let id: uuid::Uuid = field("integration id:").parse().unwrap();
    let token = field("integration token:");
    assert!(field("integration URL:").ends_with(&format!("/api/v1/integrations/{id}/phone_calls")));
    env.bind(id, &[("operator@email.com", "operator@email.com", true)])
        .await;

    let url = format!("{}/api/v1/integrations/{id}/phone_calls", env.base_url);
    let post = |token: String| {
        let request = env
            .http
            .post(&url)
            .header("Authorization", token)
            .json(&call("x"));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(token.clone()).await, 202);

    let out = admin_cli(&env, &["rotate-token", "--integration", &id.to_string()]);
    let rotated = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(rotated.len(), 64);
    // The tests' auth cache lives 1 s: the old token must stop working within it.
    let refused = eventually(Duration::from_secs(5), || async {
        match post(token.clone()).await {
            401 => Ok(()),
            other => Err(other),
        }
    })
    .await;
    assert_eq!(refused, Ok(()));
    assert_eq!(post(rotated).await, 202);
}
