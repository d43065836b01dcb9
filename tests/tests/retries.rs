//! Transient failures: the worker's database goes away (through a TCP proxy, so the shared
//! server keeps running for the other tests). Calls wait in RabbitMQ's delay queues, with
//! backoff, and nothing is lost however long the outage lasts.

use std::time::Duration;

use pipeline_tests::proxy::Proxy;
use pipeline_tests::{call, eventually, metric, metric_sum, Options, TestEnv};
use reqwest::Method;

const WAIT: Duration = Duration::from_secs(30);
const CALLS: usize = 10;

/// A test environment whose in-process worker reaches Postgres through `proxy`.
async fn env_behind(proxy: &Proxy, retry_delays_ms: Vec<u64>) -> TestEnv {
    TestEnv::start_with_worker_behind(
        proxy,
        Options {
            customize: Box::new(move |s| s.broker.retry_delays_ms = retry_delays_ms),
            ..Default::default()
        },
    )
    .await
}

async fn retried(env: &TestEnv) -> f64 {
    metric_sum(
        &env.worker_metrics().await,
        "callq_worker_calls_retried_total",
    )
}

#[tokio::test]
async fn a_database_outage_is_retried_with_backoff_and_every_call_is_stored_once() {
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let env = env_behind(&proxy, vec![200, 400, 800, 1600, 3200, 6400]).await;
    let integration = env.integration().await;

    proxy.cut();
    for i in 0..CALLS {
        let status = env
            .post(&integration, &call(&format!("outage-{i}")))
            .await
            .status();
        assert_eq!(status, 202);
    }
    // Every call fails at least once and goes to a delay queue instead of being acked.
    let seen = eventually(WAIT, || async {
        let n = retried(&env).await;
        if n >= CALLS as f64 {
            Ok(n)
        } else {
            Err(n)
        }
    })
    .await;
    assert!(seen.is_ok(), "calls were not retried: {seen:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 0);
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 0);
    // About 4 s of outage with waits of 0.2, 0.4, 0.8, 1.6 s (each attempt also waits out a
    // 0.3 s pool timeout): at most 5 attempts per call. A requeue loop would make hundreds.
    let during_outage = retried(&env).await;
    assert!(
        during_outage <= (CALLS * 5) as f64,
        "{during_outage} retries for {CALLS} calls: no backoff"
    );
    let metrics = env.worker_metrics().await;
    assert!(
        metric(
            &metrics,
            r#"callq_worker_calls_retried_total{class="pool_timeout"}"#
        ) + metric(
            &metrics,
            r#"callq_worker_calls_retried_total{class="database_unavailable"}"#
        ) >= CALLS as f64,
        "{metrics}"
    );

    proxy.restore();
    env.wait_for_count("SELECT count(*) FROM calls", CALLS as i64, WAIT)
        .await;
    assert_eq!(
        env.count("SELECT count(DISTINCT uid) FROM calls").await,
        CALLS as i64
    );
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 0);
    // Nothing is left waiting anywhere.
    env.wait_for_ready(0, WAIT).await;
}

#[tokio::test]
async fn exhausted_retries_are_kept_through_the_outage_then_recorded_and_replayable() {
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let env = env_behind(&proxy, vec![100, 200]).await;
    let integration = env.integration().await;

    proxy.cut();
    for i in 0..CALLS {
        let status = env
            .post(&integration, &call(&format!("long-{i}")))
            .await
            .status();
        assert_eq!(status, 202);
    }
    // Two retries each, then the schedule is used up while the database is still down:
    // the calls are handed to the broker's dead queue, where they wait.
    let seen = eventually(WAIT, || async {
        let n = retried(&env).await;
        if n >= (2 * CALLS) as f64 {
            Ok(n)
        } else {
            Err(n)
        }
    })
    .await;
    assert!(seen.is_ok(), "calls were not retried twice: {seen:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(retried(&env).await, (2 * CALLS) as f64, "no third retry");
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 0);

    proxy.restore();
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters WHERE reason = 'retries_exhausted'",
        CALLS as i64,
        WAIT,
    )
    .await;
    let (attempts, detail): (i32, String) =
        sqlx::query_as("SELECT attempts, detail FROM dead_letters WHERE uid = 'long-0'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 3, "first attempt and two retries");
    assert!(detail.contains("transient"), "{detail}");
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 0);

    let (status, doc) = env.get_call(&integration, "long-0").await;
    assert_eq!(status, 200);
    assert_eq!(doc["data"]["attributes"]["reason"], "retries_exhausted");
    assert!(doc["data"]["attributes"]["replay"]
        .as_str()
        .unwrap()
        .contains("/api/v1/dead_letters/replay"));

    let (status, body) = env
        .admin(
            Method::POST,
            "/api/v1/dead_letters/replay?reason=retries_exhausted",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["replayed"], CALLS);
    env.wait_for_count("SELECT count(*) FROM calls", CALLS as i64, WAIT)
        .await;
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 0);
}
