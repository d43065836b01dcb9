//! The probe stage: media are probed after the call is stored, never before, and no
//! recording host, however slow or dead, holds up anyone's calls or another host's probes.

use std::time::Duration;

use pipeline_tests::media_server::{silent_host, MediaServer};
use pipeline_tests::proxy::Proxy;
use pipeline_tests::{
    binary, call, child_env, eventually, Integration, Options, TestEnv, AMQP_URL,
};
use serde_json::json;
use shared::config::Stage;

const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct Media {
    media_status: String,
    media_error: Option<String>,
    media_probe_attempts: i32,
    media_next_probe_at: Option<chrono::DateTime<chrono::Utc>>,
    media_url: String,
}

/// The call's media columns; `None` while it is not stored yet.
async fn stored_media(env: &TestEnv, uid: &str) -> Option<Media> {
    sqlx::query_as(
        "SELECT media_status, media_error, media_probe_attempts, media_next_probe_at, media_url
         FROM calls WHERE uid = $1",
    )
    .bind(uid)
    .fetch_optional(&env.pool)
    .await
    .expect(uid)
}

async fn media(env: &TestEnv, uid: &str) -> Media {
    stored_media(env, uid).await.expect("the call is stored")
}

async fn post_with_media(env: &TestEnv, integration: &Integration, uid: &str, url: &str) {
    let mut body = call(uid);
    body["media_url"] = json!(url);
    assert_eq!(env.post(integration, &body).await.status(), 202);
}

/// Calls `<prefix>-0` .. `<prefix>-<n-1>`, each with its own recording under `base`.
async fn post_many(env: &TestEnv, integration: &Integration, prefix: &str, n: usize, base: &str) {
    for i in 0..n {
        let url = format!("{base}/{i}.wav");
        post_with_media(env, integration, &format!("{prefix}-{i}"), &url).await;
    }
}

/// Waits until the call's media status is `status`.
async fn wait_for_status(env: &TestEnv, uid: &str, status: &str) -> Media {
    eventually(WAIT, || async {
        match stored_media(env, uid).await {
            Some(m) if m.media_status == status => Ok(m),
            other => Err(other),
        }
    })
    .await
    .unwrap_or_else(|m| panic!("{uid} stayed {m:?}, expected {status}"))
}

#[tokio::test]
async fn a_host_that_never_answers_delays_neither_its_calls_nor_another_hosts_probes() {
    // Its probes would wait a minute, twice this test's patience: whatever waits for them
    // fails the test. Its line is short, so most of its probes are also put off.
    let env = TestEnv::start_with(Options {
        customize: Box::new(|s| {
            s.media.timeout_ms = 60_000;
            s.media.per_host_concurrency = 4;
            s.media.host_backlog = 4;
            s.media.max_in_flight = 16;
        }),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let silent = silent_host().await;
    let good = MediaServer::start(Duration::ZERO).await;
    post_many(&env, &integration, "silent", 30, &silent).await;
    post_with_media(&env, &integration, "good", &format!("{}/ok.wav", good.base)).await;

    env.wait_for_count("SELECT count(*) FROM calls", 31, WAIT)
        .await;
    wait_for_status(&env, "good", "reachable").await;
    let (status, body) = env.get_call(&integration, "silent-0").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["attributes"]["status"], "stored");
    assert_eq!(
        body["data"]["attributes"]["media"]["status"], "pending",
        "stored while its host keeps the probe waiting"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM calls WHERE media_status = 'pending'")
            .await,
        30
    );
    let deferred = eventually(WAIT, || async {
        let metrics = env.worker_metrics().await;
        let n = pipeline_tests::metric(&metrics, "callq_worker_probes_total{outcome=\"deferred\"}");
        (n >= 1.0).then_some(n).ok_or(metrics)
    })
    .await;
    assert!(
        deferred.is_ok(),
        "the host's excess is put off, not held: {deferred:?}"
    );
}

#[tokio::test]
async fn after_a_few_timeouts_a_hosts_circuit_opens_and_its_calls_are_marked_at_once() {
    let env = TestEnv::start_with(Options {
        customize: Box::new(|s| {
            s.media.timeout_ms = 1000;
            s.media.circuit_failures = 3;
            s.media.circuit_cooldown_ms = 600_000;
        }),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let silent = silent_host().await;
    post_many(&env, &integration, "silent", 5, &silent).await;
    for i in 0..5 {
        let m = wait_for_status(&env, &format!("silent-{i}"), "unreachable").await;
        assert!(
            matches!(m.media_error.as_deref(), Some("timeout" | "circuit open")),
            "{m:?}"
        );
        assert!(m.media_next_probe_at.is_some(), "tried again later: {m:?}");
    }
    post_with_media(
        &env,
        &integration,
        "silent-next",
        &format!("{silent}/next.wav"),
    )
    .await;
    let m = wait_for_status(&env, "silent-next", "unreachable").await;
    assert_eq!(m.media_error.as_deref(), Some("circuit open"));
    let (_, body) = env.get_call(&integration, "silent-next").await;
    assert_eq!(body["data"]["attributes"]["media"]["status"], "unreachable");
    assert_eq!(body["data"]["attributes"]["media"]["error"], "circuit open");
    // Sampled every few seconds.
    let open = eventually(WAIT, || async {
        let metrics = env.worker_metrics().await;
        let open = pipeline_tests::metric(&metrics, "callq_worker_open_circuits");
        (open == 1.0).then_some(()).ok_or(metrics)
    })
    .await;
    assert!(open.is_ok(), "{open:?}");
}

#[tokio::test]
async fn a_recording_that_appears_late_ends_reachable_after_a_retry() {
    let env = TestEnv::start_with(Options {
        customize: Box::new(|s| s.media.retry_delays_ms = vec![300, 300]),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let server = MediaServer::start(Duration::ZERO).await;
    post_with_media(
        &env,
        &integration,
        "late",
        &format!("{}/late.wav", server.base),
    )
    .await;
    post_with_media(
        &env,
        &integration,
        "missing",
        &format!("{}/missing.wav", server.base),
    )
    .await;

    let late = wait_for_status(&env, "late", "reachable").await;
    assert_eq!(late.media_probe_attempts, 2, "404 first, then found");
    assert_eq!(late.media_next_probe_at, None);

    // A recording that never appears: unreachable after the whole schedule, and final.
    let missing = eventually(WAIT, || async {
        let m = stored_media(&env, "missing").await;
        match m {
            Some(m) if m.media_probe_attempts == 3 => Ok(m),
            other => Err(other),
        }
    })
    .await
    .expect("probed three times");
    assert_eq!(missing.media_status, "unreachable");
    assert_eq!(missing.media_error.as_deref(), Some("http status 404"));
    assert_eq!(missing.media_next_probe_at, None, "its status is final");
}

#[tokio::test]
async fn a_probe_result_never_overwrites_a_newer_media_url() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let server = MediaServer::start(Duration::from_millis(1500)).await;
    // The first URL's probe is still waiting for its answer when the call moves on.
    post_with_media(
        &env,
        &integration,
        "moved",
        &format!("{}/slow.wav", server.base),
    )
    .await;
    server.wait_for_slow_requests(1, WAIT).await;
    post_with_media(
        &env,
        &integration,
        "moved",
        &format!("{}/missing.wav", server.base),
    )
    .await;

    let m = wait_for_status(&env, "moved", "unreachable").await;
    assert!(m.media_url.ends_with("/missing.wav"));
    // The old URL's probe answers 200 after this; it must change nothing.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let after = media(&env, "moved").await;
    assert_eq!(after.media_status, "unreachable", "{after:?}");
    assert_eq!(after.media_error.as_deref(), Some("http status 404"));
}

#[tokio::test]
async fn with_the_probe_stage_stopped_calls_are_stored_and_their_probes_wait_in_the_queue() {
    let mut env = TestEnv::start_with(Options {
        customize: Box::new(|s| s.worker.stages = vec![Stage::Calls]),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let server = MediaServer::start(Duration::ZERO).await;
    for i in 0..3 {
        post_with_media(
            &env,
            &integration,
            &format!("p{i}"),
            &format!("{}/ok.wav", server.base),
        )
        .await;
    }
    env.wait_for_count(
        "SELECT count(*) FROM calls WHERE media_status = 'pending'",
        3,
        WAIT,
    )
    .await;
    let probes = format!("{}.probes", env.settings.broker.queue_prefix);
    eventually(WAIT, || async {
        let n = env.ready_in(&probes).await;
        (n >= 1).then_some(()).ok_or(n)
    })
    .await
    .expect("the probe work waits in its queue");

    env.stop_worker().await;
    env.settings.worker.stages = vec![Stage::Probes];
    env.start_worker().await;
    env.wait_for_count(
        "SELECT count(*) FROM calls WHERE media_status = 'reachable'",
        3,
        WAIT,
    )
    .await;
    assert_eq!(env.ready_in(&probes).await, 0);
}

#[tokio::test]
async fn a_worker_killed_between_the_commit_and_the_probe_publish_still_gets_the_calls_probed() {
    let mut env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let server = MediaServer::start(Duration::ZERO).await;
    let broker = Proxy::start("127.0.0.1:5672").await;
    let mut child = tokio::process::Command::new(binary("worker"))
        .envs(child_env(&env))
        .env(
            "APP_BROKER__URL",
            AMQP_URL.replace("127.0.0.1:5672", &format!("127.0.0.1:{}", broker.port)),
        )
        .env("APP_BROKER__CONNECT_TIMEOUT_MS", "120000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the worker binary");
    // Once it consumes, its publisher (which connects at its first publish) can no longer
    // reach the broker: it stores the calls, then hangs before queueing their probes.
    eventually(WAIT, || async {
        let n = env.consumers(&env.work_queue()).await;
        (n >= 1).then_some(()).ok_or(n)
    })
    .await
    .expect("the worker consumes");
    broker.hold_new();
    for i in 0..5 {
        post_with_media(
            &env,
            &integration,
            &format!("c{i}"),
            &format!("{}/ok.wav", server.base),
        )
        .await;
    }
    // Stored: some or all of them, by as many batches as they came in; the other batches
    // wait behind the lane that hangs.
    eventually(WAIT, || async {
        let n = env.count("SELECT count(*) FROM calls").await;
        (n >= 1).then_some(()).ok_or(n)
    })
    .await
    .expect("stored");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        env.count("SELECT count(*) FROM calls WHERE media_status <> 'pending'")
            .await,
        0
    );
    let probes = format!("{}.probes", env.settings.broker.queue_prefix);
    assert_eq!(env.ready_in(&probes).await, 0, "no probe was queued");
    child.kill().await.unwrap();
    child.wait().await.unwrap();

    env.start_worker().await;
    env.wait_for_count(
        "SELECT count(*) FROM calls WHERE media_status = 'reachable'",
        5,
        WAIT,
    )
    .await;
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 5);
    env.wait_for_ready(0, WAIT).await;
}

#[tokio::test]
async fn probe_results_wait_out_a_database_outage_and_land_when_it_returns() {
    let mut env = TestEnv::start_with(Options {
        customize: Box::new(|s| s.worker.stages = vec![Stage::Calls]),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let server = MediaServer::start(Duration::ZERO).await;
    let url = format!("{}/slow.wav", server.base);
    post_with_media(&env, &integration, "outage", &url).await;
    wait_for_status(&env, "outage", "pending").await;

    env.stop_worker().await;
    env.settings.worker.stages = vec![Stage::Probes];
    let database = Proxy::start("127.0.0.1:5432").await;
    database.cut();
    env.start_worker_behind(&database).await;
    // Probed, but its result cannot be written: the work stays unacked in the worker.
    server.wait_for_slow_requests(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(media(&env, "outage").await.media_status, "pending");
    let probes = format!("{}.probes", env.settings.broker.queue_prefix);
    assert_eq!(env.ready_in(&probes).await, 0, "held, not handed back");

    database.restore();
    wait_for_status(&env, "outage", "reachable").await;
}
