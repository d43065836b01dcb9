//! Replaying dead letters on purpose: by filter, as a dry run, twice, killed midway; and
//! listing, showing and purging them, through the admin API and the CLI.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use pipeline_tests::{call, child_env, metric, Integration, Options, TestEnv};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// Replays happen only when a test asks for them.
async fn env_without_auto_replay() -> TestEnv {
    TestEnv::start_with(Options {
        customize: Box::new(|s| s.worker.auto_replay_interval_ms = 0),
        ..Default::default()
    })
    .await
}

/// Posts calls for operators nobody has bound and waits until all are dead letters.
async fn set_aside(env: &TestEnv, integration: &Integration, calls: &[(&str, String)]) {
    let before = env.count("SELECT count(*) FROM dead_letters").await;
    for chunk in calls.chunks(50) {
        let posts = chunk.iter().map(|(operator, uid)| {
            let mut body = call(uid);
            body["operator_id"] = json!(operator);
            async move { env.post(integration, &body).await.status().as_u16() }
        });
        assert!(join_all(posts).await.iter().all(|s| *s == 202));
    }
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters",
        before + calls.len() as i64,
        WAIT,
    )
    .await;
}

fn bind_all(operators: &[&str]) -> Vec<(String, String, bool)> {
    operators
        .iter()
        .map(|o| (o.to_string(), o.to_string(), true))
        .collect()
}

async fn bind(env: &TestEnv, integration: &Integration, operators: &[&str]) {
    let rows = bind_all(operators);
    let rows: Vec<(&str, &str, bool)> = rows
        .iter()
        .map(|(e, u, a)| (e.as_str(), u.as_str(), *a))
        .collect();
    env.bind(integration.id, &rows).await;
}

#[tokio::test]
async fn a_filtered_replay_moves_only_what_matches_and_a_dry_run_changes_nothing() {
    let env = env_without_auto_replay().await;
    let integration = env.integration().await;
    let mut calls: Vec<(&str, String)> =
        (0..3).map(|i| ("a@email.com", format!("a-{i}"))).collect();
    calls.extend((0..2).map(|i| ("b@email.com", format!("b-{i}"))));
    set_aside(&env, &integration, &calls).await;
    bind(
        &env,
        &integration,
        &["operator@email.com", "a@email.com", "b@email.com"],
    )
    .await;

    let (status, listed) = env
        .admin(Method::GET, "/api/v1/dead_letters?operator_id=a@email.com")
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["meta"]["total"], 3);
    assert_eq!(
        listed["meta"]["counts_by_reason"],
        json!({"operator_not_found": 3})
    );
    assert_eq!(listed["data"].as_array().unwrap().len(), 3);

    let (status, dry) = env
        .admin(
            Method::POST,
            "/api/v1/dead_letters/replay?operator_id=a@email.com&dry_run=true",
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["meta"]["would_replay"], 3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 5);
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 0);

    let (status, done) = env
        .admin(
            Method::POST,
            "/api/v1/dead_letters/replay?operator_id=a@email.com",
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["meta"]["replayed"], 3);
    assert_eq!(done["meta"]["remaining"], 0);
    env.wait_for_count("SELECT count(*) FROM calls", 3, WAIT)
        .await;
    assert_eq!(
        env.count("SELECT count(*) FROM calls WHERE operator_id = 'a@email.com'")
            .await,
        3
    );
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letters WHERE operator_id = 'b@email.com'")
            .await,
        2
    );
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 2);

    let (_, again) = env
        .admin(
            Method::POST,
            "/api/v1/dead_letters/replay?operator_id=a@email.com",
        )
        .await;
    assert_eq!(again["meta"]["replayed"], 0);
    assert_eq!(
        metric(
            &env.gateway_metrics().await,
            "callq_gateway_dead_letters_replayed_total"
        ),
        3.0
    );
}

#[tokio::test]
async fn a_call_replayed_twice_is_stored_once() {
    let env = env_without_auto_replay().await;
    let integration = env.integration().await;
    // The same call sent twice (an update): two dead letters of one uid.
    set_aside(
        &env,
        &integration,
        &[
            ("late@email.com", "twice".into()),
            ("late@email.com", "twice".into()),
        ],
    )
    .await;
    bind(
        &env,
        &integration,
        &["operator@email.com", "late@email.com"],
    )
    .await;
    // As if an earlier replay had published and then died before retiring the letter.
    let messages: Vec<Value> = sqlx::query_scalar("SELECT message FROM dead_letters")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    for message in &messages {
        env.publish_raw(&serde_json::to_vec(message).unwrap()).await;
    }

    let (status, done) = env.admin(Method::POST, "/api/v1/dead_letters/replay").await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["meta"]["replayed"], 2);
    env.wait_for_count("SELECT count(*) FROM calls", 1, WAIT)
        .await;
    env.wait_for_count("SELECT count(*) FROM dead_letters", 0, WAIT)
        .await;
    env.wait_for_ready(0, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 1);
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 0);
}

#[tokio::test]
async fn a_replay_killed_midway_and_run_again_stores_every_call_once() {
    let env = env_without_auto_replay().await;
    let integration = env.integration().await;
    const CALLS: usize = 300;
    let calls: Vec<(&str, String)> = (0..CALLS)
        .map(|i| ("backlog@email.com", format!("backlog-{i}")))
        .collect();
    set_aside(&env, &integration, &calls).await;
    bind(
        &env,
        &integration,
        &["operator@email.com", "backlog@email.com"],
    )
    .await;

    let mut replay = tokio::process::Command::new(pipeline_tests::binary("admin"))
        .envs(child_env(&env))
        .env("APP_WORKER__REPLAY_BATCH", "2")
        .args(["dead-letters", "replay", "--reason", "operator_not_found"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Killed as soon as the first letters are retired: midway through the backlog.
    let deadline = Instant::now() + WAIT;
    while env.count("SELECT count(*) FROM dead_letters").await == CALLS as i64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    replay.kill().await.unwrap();
    replay.wait().await.unwrap();
    let left = env.count("SELECT count(*) FROM dead_letters").await;
    assert!(
        (1..CALLS as i64).contains(&left),
        "killed midway: {left} of {CALLS} left"
    );

    let again = Command::new(pipeline_tests::binary("admin"))
        .envs(child_env(&env))
        .args(["dead-letters", "replay", "--reason", "operator_not_found"])
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // Not a terminal: no progress bar, the summary line alone.
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.starts_with("replayed ") && stdout.ends_with(" dead letter(s)\n"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!stderr.contains("replayed"), "{stderr}");

    env.wait_for_count("SELECT count(*) FROM calls", CALLS as i64, WAIT)
        .await;
    env.wait_for_ready(0, WAIT).await;
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 0);
    assert_eq!(
        env.count("SELECT count(DISTINCT uid) FROM calls").await,
        CALLS as i64
    );
}

#[tokio::test]
async fn the_dead_letter_api_lists_shows_and_purges_only_on_purpose() {
    let env = env_without_auto_replay().await;
    let integration = env.integration().await;
    set_aside(&env, &integration, &[("ghost@email.com", "ghost-1".into())]).await;
    env.publish_raw(b"not a call at all").await;
    env.wait_for_count("SELECT count(*) FROM dead_letters", 2, WAIT)
        .await;

    let unauthorised = env
        .http
        .get(format!("{}/api/v1/dead_letters", env.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);

    let (status, bad) = env
        .admin(Method::GET, "/api/v1/dead_letters?reason=lost")
        .await;
    assert_eq!(status, 400);
    let detail = bad["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("reason") && detail.contains("operator_not_found"),
        "{detail}"
    );

    let (_, all) = env.admin(Method::GET, "/api/v1/dead_letters").await;
    assert_eq!(all["meta"]["total"], 2);
    assert_eq!(
        all["meta"]["counts_by_reason"],
        json!({"operator_not_found": 1, "undecodable": 1})
    );
    let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, recent) = env
        .admin(
            Method::GET,
            &format!("/api/v1/dead_letters?reason=undecodable&failed_after={hour_ago}"),
        )
        .await;
    assert_eq!(recent["meta"]["total"], 1);
    let (_, old) = env
        .admin(
            Method::GET,
            &format!("/api/v1/dead_letters?failed_before={hour_ago}"),
        )
        .await;
    assert_eq!(old["meta"]["total"], 0);
    let (_, by_integration) = env
        .admin(
            Method::GET,
            &format!("/api/v1/dead_letters?integration_id={}", integration.id),
        )
        .await;
    assert_eq!(by_integration["meta"]["total"], 1);
    let ghost = &by_integration["data"][0];
    assert_eq!(ghost["attributes"]["uid"], "ghost-1");

    let id = ghost["id"].as_str().unwrap();
    let (status, shown) = env
        .admin(Method::GET, &format!("/api/v1/dead_letters/{id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        shown["data"]["attributes"]["message"]["call"]["uid"],
        "ghost-1"
    );
    assert_eq!(shown["data"]["attributes"]["reason"], "operator_not_found");
    let (status, _) = env
        .admin(
            Method::GET,
            &format!("/api/v1/dead_letters/{}", uuid::Uuid::new_v4()),
        )
        .await;
    assert_eq!(status, 404);

    let (_, doc) = env.get_call(&integration, "ghost-1").await;
    assert_eq!(doc["data"]["attributes"]["dead_letter_id"], id);

    let (status, refused) = env.admin(Method::DELETE, "/api/v1/dead_letters").await;
    assert_eq!(status, 400, "{refused}");
    let (_, dry) = env
        .admin(
            Method::DELETE,
            "/api/v1/dead_letters?reason=undecodable&dry_run=true",
        )
        .await;
    assert_eq!(dry["meta"]["would_purge"], 1);
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 2);
    let (status, purged) = env
        .admin(Method::DELETE, "/api/v1/dead_letters?reason=undecodable")
        .await;
    assert_eq!(status, 200);
    assert_eq!(purged["meta"]["purged"], 1);
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letters WHERE reason = 'operator_not_found'")
            .await,
        1
    );
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 1);
}

#[tokio::test]
async fn the_cli_lists_shows_and_dry_runs_and_refuses_a_blind_purge() {
    let env = env_without_auto_replay().await;
    let integration = env.integration().await;
    set_aside(
        &env,
        &integration,
        &[("ghost@email.com", "ghost-cli".into())],
    )
    .await;
    let cli = |args: &[&str]| {
        let out = Command::new(pipeline_tests::binary("admin"))
            .envs(child_env(&env))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, listed, _) = cli(&["dead-letters", "list"]);
    assert!(ok);
    assert!(listed.contains("1 dead letter(s)"), "{listed}");
    assert!(listed.contains("operator_not_found"), "{listed}");
    assert!(listed.contains("ghost-cli"), "{listed}");
    let id: String = sqlx::query_scalar("SELECT id::text FROM dead_letters")
        .fetch_one(&env.pool)
        .await
        .unwrap();

    let (ok, shown, _) = cli(&["dead-letters", "show", "--id", &id]);
    assert!(ok);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["message"]["call"]["uid"], "ghost-cli");

    let (ok, dry, _) = cli(&[
        "dead-letters",
        "replay",
        "--dry-run",
        "--operator-id",
        "ghost@email.com",
    ]);
    assert!(ok);
    assert!(dry.contains("would replay 1"), "{dry}");

    let (ok, _, refused) = cli(&["dead-letters", "purge"]);
    assert!(!ok);
    assert!(refused.contains("--all"), "{refused}");
    let (ok, _, bad) = cli(&["dead-letters", "list", "--reason", "lost"]);
    assert!(!ok);
    assert!(bad.contains("retries_exhausted"), "{bad}");
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 1);
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 0);
}
