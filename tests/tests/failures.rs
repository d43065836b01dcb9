//! The real parts failing: broker unreachable or lost, a gateway's database down, a worker
//! killed with messages in hand (a worker's database down: `retries.rs`). Outages are made
//! with a TCP proxy in front of the shared servers, which keep running for the other tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pipeline_tests::proxy::Proxy;
use pipeline_tests::{call, eventually, via_port, Integration, Options, TestEnv};
use secrecy::SecretString;

const WAIT: Duration = Duration::from_secs(20);
/// Far above the bounded waits of a stop (5 s for the broker's close-ok), far below a hang.
const STOP_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test]
async fn an_unreachable_broker_gets_503_with_retry_after_never_202() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = TestEnv::start_with(Options {
        worker: false,
        customize: Box::new(move |s| {
            s.broker.url = SecretString::from(format!("amqp://guest:guest@127.0.0.1:{closed}/%2f"))
        }),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    for uid in ["a", "b", "c"] {
        let response = env.post(&integration, &call(uid)).await;
        assert_eq!(response.status(), 503, "{uid}");
        assert!(response.headers().get("retry-after").is_some());
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["status"], 503);
    }
    let ready = env
        .http
        .get(format!("{}/readyz", env.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        env.http
            .get(format!("{}/healthz", env.base_url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_broker_lost_mid_flight_gets_503s_and_every_202_is_stored() {
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let port = proxy.port;
    let env = TestEnv::start_with(Options {
        worker: false,
        customize: Box::new(move |s| {
            s.broker.url = SecretString::from(format!("amqp://guest:guest@127.0.0.1:{port}/%2f"))
        }),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let mut accepted = Vec::new();
    assert_eq!(env.post(&integration, &call("before")).await.status(), 202);
    accepted.push("before");

    proxy.cut();
    for uid in ["during-1", "during-2", "during-3"] {
        let status = env.post(&integration, &call(uid)).await.status();
        assert_eq!(status, 503, "{uid} while the broker is unreachable");
    }

    proxy.restore();
    let back = eventually(WAIT, || async {
        let status = env.post(&integration, &call("after")).await.status();
        if status == 202 {
            Ok(())
        } else {
            Err(status)
        }
    })
    .await;
    assert!(
        back.is_ok(),
        "the gateway reconnects once the broker is back: {back:?}"
    );
    accepted.push("after");

    // The worker talks to the broker directly: what was confirmed is stored, nothing else.
    let mut env = env;
    env.start_worker().await;
    env.wait_for_count("SELECT count(*) FROM calls", accepted.len() as i64, WAIT)
        .await;
    assert_eq!(
        env.count("SELECT count(*) FROM calls WHERE uid LIKE 'during-%'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_gateway_without_its_database_answers_503_or_serves_from_its_auth_cache() {
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let port = proxy.port;
    let env = TestEnv::start_with(Options {
        worker: false,
        customize: Box::new(move |s| {
            s.database.url = via_port(&s.database.url, port);
            s.database.acquire_timeout_ms = 500;
            s.auth.cache_ttl_secs = 60;
        }),
        ..Default::default()
    })
    .await;
    let warm = env.integration().await;
    let cold = env.integration().await;
    assert_eq!(env.post(&warm, &call("warm-up")).await.status(), 202);

    proxy.cut();
    let response = env.post(&cold, &call("cold")).await;
    assert_eq!(
        response.status(),
        503,
        "an integration not yet cached cannot be authenticated"
    );
    assert!(response.headers().get("retry-after").is_some());
    assert_eq!(
        env.post(&warm, &call("cached")).await.status(),
        202,
        "a cached integration is authenticated without the database"
    );
    proxy.restore();
}

#[tokio::test]
async fn a_worker_killed_with_unacked_messages_loses_none_and_a_new_worker_stores_each_once() {
    let mut env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    const CALLS: usize = 20;
    for i in 0..CALLS {
        assert_eq!(
            env.post(&integration, &call(&format!("k{i}")))
                .await
                .status(),
            202
        );
    }

    // Its database never answers, so it holds its prefetched deliveries unacked.
    let (mut child, _database) = env.spawn_stuck_worker(8).await;
    // 8 delivered and held (its prefetch), 12 still ready: the worker is mid-batch.
    env.wait_for_ready((CALLS - 8) as u32, WAIT).await;
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 0);

    child.kill().await.unwrap();
    child.wait().await.unwrap();

    env.start_worker().await;
    env.wait_for_count("SELECT count(*) FROM calls", CALLS as i64, WAIT)
        .await;
    assert_eq!(
        env.count("SELECT count(DISTINCT uid) FROM calls").await,
        CALLS as i64
    );
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 0);
}

/// A worker whose broker connection goes through a proxy (the gateway's does not), with one
/// call ("before") already stored through it.
async fn worker_behind_a_proxy() -> (Proxy, TestEnv, Integration) {
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let mut env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let direct = env.settings.broker.url.clone();
    env.settings.broker.url =
        SecretString::from(format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port));
    env.start_worker().await;
    env.settings.broker.url = direct;
    assert_eq!(env.post(&integration, &call("before")).await.status(), 202);
    env.wait_for_count("SELECT count(*) FROM calls", 1, WAIT)
        .await;
    (proxy, env, integration)
}

#[tokio::test]
async fn a_worker_that_loses_the_broker_reconnects_and_goes_on() {
    let (proxy, env, integration) = worker_behind_a_proxy().await;

    proxy.cut();
    for uid in ["during-1", "during-2"] {
        assert_eq!(
            env.post(&integration, &call(uid)).await.status(),
            202,
            "the gateway's broker is fine"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.count("SELECT count(*) FROM calls").await,
        1,
        "the worker is cut off"
    );

    proxy.restore();
    env.wait_for_count("SELECT count(*) FROM calls", 3, WAIT)
        .await;
}

#[tokio::test]
async fn a_worker_stops_even_when_the_broker_no_longer_answers() {
    let (proxy, mut env, _) = worker_behind_a_proxy().await;

    // The connection stays up but nothing answers: no close-ok, no cancel-ok.
    proxy.stall();
    tokio::time::timeout(STOP_WITHIN, env.stop_worker())
        .await
        .expect("the worker stopped although the broker did not answer");
    assert_eq!(
        env.count("SELECT count(*) FROM calls").await,
        1,
        "what was stored stays stored"
    );
}

#[tokio::test]
async fn a_stopping_worker_finishes_and_acks_what_it_holds() {
    let seen = Arc::new(AtomicUsize::new(0));
    let mut env = TestEnv::start_with(Options {
        worker: false,
        inspector: Some(Arc::new({
            let seen = seen.clone();
            move |_| {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        })),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    for i in 0..3 {
        assert_eq!(
            env.post(&integration, &call(&format!("s{i}")))
                .await
                .status(),
            202
        );
    }
    env.start_worker().await;
    // All three decoded, so in a lane's batch; a delivery the broker has sent but no lane
    // has taken yet is not held and would rightly go back to the queue.
    eventually(WAIT, || async {
        (seen.load(Ordering::SeqCst) >= 3).then_some(()).ok_or(())
    })
    .await
    .expect("the worker took the three calls");
    env.stop_worker().await;
    assert_eq!(
        env.count("SELECT count(*) FROM calls").await,
        3,
        "stored before the worker exited"
    );
    // Unacked messages would return to the queue as the worker's connection closed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.ready_count().await,
        0,
        "acked, so nothing returns to the queue"
    );
}
