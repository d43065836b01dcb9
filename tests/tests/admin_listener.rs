//! `admin.listen`: the admin API and /metrics on a listener of their own, and the admin
//! token's minimum length.

use pipeline_tests::{call, metric, Options, TestEnv};
use secrecy::SecretString;
use shared::config::Settings;

#[tokio::test]
async fn with_admin_listen_the_admin_api_and_metrics_are_served_there_only() {
    let env = TestEnv::start_with(Options {
        worker: false,
        customize: Box::new(|s| s.admin.listen = Some("127.0.0.1:0".parse().unwrap())),
        ..Default::default()
    })
    .await;
    assert_ne!(env.admin_url, env.base_url);
    let integration = env.integration().await;
    let status = |base: &str, path: &str| {
        let request = env
            .http
            .get(format!("{base}{path}"))
            .header("Authorization", &env.admin_token)
            .send();
        async move { request.await.expect("GET").status().as_u16() }
    };
    let bindings = format!(
        "/api/v1/api_integrations/{}/user_account_bindings_csv",
        integration.id
    );
    for path in ["/api/v1/dead_letters", bindings.as_str(), "/metrics"] {
        assert_eq!(
            status(&env.admin_url, path).await,
            200,
            "{path} on the admin listener"
        );
        assert_eq!(
            status(&env.base_url, path).await,
            404,
            "{path} on the public listener"
        );
    }
    let reprobe = env
        .http
        .post(format!(
            "{}/api/v1/media/reprobe?dry_run=true",
            env.base_url
        ))
        .header("Authorization", &env.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(reprobe.status(), 404);
    for base in [&env.base_url, &env.admin_url] {
        assert_eq!(status(base, "/healthz").await, 200, "{base}");
        assert_eq!(status(base, "/readyz").await, 200, "{base}");
    }

    // Calls are the public listener's, and only its.
    let accepted = env.post(&integration, &call("apart-1")).await;
    assert_eq!(accepted.status(), 202);
    let on_admin = env
        .http
        .post(format!(
            "{}/api/v1/integrations/{}/phone_calls",
            env.admin_url, integration.id
        ))
        .header("Authorization", &integration.token)
        .json(&call("apart-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_admin.status(), 404);
    let metrics = env.gateway_metrics().await;
    assert_eq!(metric(&metrics, "callq_gateway_calls_accepted_total"), 1.0);
}

#[tokio::test]
async fn a_short_admin_token_is_refused_at_start() {
    let mut settings = Settings::defaults();
    settings.http.listen = "127.0.0.1:0".parse().unwrap();
    settings.admin.token = SecretString::from("x".repeat(31));
    let refused = gateway::Application::build(settings.clone())
        .await
        .err()
        .expect("a 31-byte admin token is refused");
    let message = refused.to_string();
    assert!(
        message.contains("admin.token") && message.contains("APP_ADMIN__TOKEN"),
        "{message}"
    );
    assert!(message.contains("at least 32"), "{message}");

    settings.admin.token = SecretString::from("x".repeat(32));
    assert!(gateway::Application::build(settings).await.is_ok());
}

/// Found by schemathesis (deploy/api-check.sh): a NUL in a text filter failed the query itself.
#[tokio::test]
async fn a_nul_in_an_admin_request_is_a_client_error_not_a_server_error() {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    for filter in ["operator_id=a%00b", "uid=%00"] {
        let (status, body) = env
            .admin(
                reqwest::Method::GET,
                &format!("/api/v1/dead_letters?{filter}"),
            )
            .await;
        assert_eq!(status, 400, "{filter}: {body}");
        assert!(
            body["errors"][0]["detail"]
                .as_str()
                .unwrap()
                .contains("NUL"),
            "{body}"
        );
    }
    let integration = env.integration().await;
    let response = env
        .http
        .put(format!(
            "{}/api/v1/api_integrations/{}/import_user_account_bindings",
            env.admin_url, integration.id
        ))
        .header("Authorization", &env.admin_token)
        .json(
            &serde_json::json!({"data": [{"email": "a\u{0}@example.org", "first_name": "A\u{0}",
            "last_name": "B", "integration_uid": "1\u{0}", "department": "D\u{0}"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let renamed = env
        .http
        .patch(format!(
            "{}/api/v1/api_integrations/{}",
            env.admin_url, integration.id
        ))
        .header("Authorization", &env.admin_token)
        .json(&serde_json::json!({"data": {"attributes": {"name": "PBX\u{0}"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 422);
}
