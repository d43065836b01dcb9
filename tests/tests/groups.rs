//! Calls that reach a gateway together travel in one message (a group); a worker stores
//! each of them as if it had come alone, and whatever of a group fails goes on alone.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use pipeline_tests::proxy::Proxy;
use pipeline_tests::{call, eventually, metric, metric_sum, Integration, Options, TestEnv};
use secrecy::SecretString;
use serde_json::{json, Value};
use shared::message::{self, CallMessage};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn calls_posted_together_travel_in_groups_and_are_each_stored_once() {
    const CALLS: usize = 60;
    let mut env = TestEnv::start_with(Options {
        worker: false,
        // One publish awaiting its confirm at a time: the calls behind it must group.
        customize: Box::new(|s| {
            s.broker.publish_in_flight = 1;
            s.broker.group_max_calls = 64;
            s.http.queued_notes = true;
        }),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let bodies: Vec<_> = (0..CALLS)
        .map(|i| {
            let mut body = call(&format!("together-{i}"));
            body["custom_fields"] = json!({"seq": i});
            body
        })
        .collect();
    let answers = join_all(bodies.iter().map(|body| env.post(&integration, body))).await;
    assert!(answers.iter().all(|a| a.status() == 202));

    let metrics = env.gateway_metrics().await;
    let messages = metric(&metrics, "callq_gateway_messages_published_total");
    assert_eq!(
        metric(&metrics, "callq_gateway_calls_published_total"),
        CALLS as f64
    );
    assert!(
        messages < CALLS as f64 / 2.0,
        "{messages} messages for {CALLS} calls posted together: no grouping"
    );
    env.wait_for_ready(messages as u32, WAIT).await;

    // Groups travel compressed; what they hold is the calls' messages, byte for byte JSON.
    let peeked = env.peek_work_queue().await;
    assert_eq!(peeked.len(), messages as usize);
    let mut compressed = 0;
    for (properties, data) in peeked {
        let encoding = properties
            .content_encoding()
            .as_ref()
            .map(|e| e.to_string());
        let body = message::decompress(encoding.as_deref(), &data).expect("decompresses");
        let calls = message::split(&body);
        if calls.len() > 1 {
            assert_eq!(
                encoding.as_deref(),
                Some(message::LZ4),
                "a group goes compressed"
            );
            // Two similar calls compress to about half; what grouping is for, many, to far less.
            if calls.len() >= 4 {
                assert!(
                    data.len() * 2 < body.len(),
                    "{} of {} bytes",
                    data.len(),
                    body.len()
                );
            }
            compressed += 1;
        }
        for call in calls {
            CallMessage::from_bytes(call).expect("a call message");
        }
    }
    assert!(compressed > 0, "no group among {messages} messages");

    env.start_worker().await;
    env.wait_for_count("SELECT count(*) FROM calls", CALLS as i64, WAIT)
        .await;
    env.wait_for_ready(0, WAIT).await;
    let distinct: i64 = env
        .count("SELECT count(DISTINCT custom_fields) FROM calls WHERE uid LIKE 'together-%'")
        .await;
    assert_eq!(distinct, CALLS as i64, "every call kept its own fields");
    assert_eq!(env.count("SELECT count(*) FROM queued_calls").await, 0);
    assert_eq!(
        metric(
            &env.worker_metrics().await,
            "callq_worker_calls_stored_total"
        ),
        CALLS as f64
    );
}

#[tokio::test]
async fn a_corrupt_call_in_a_group_is_set_aside_alone_and_the_others_are_stored() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let mut messages = TestEnv::messages(&integration, &[call("left"), call("right")]);
    // Well-formed JSON with brackets and commas inside its strings, of a version no worker
    // knows.
    messages.insert(
        1,
        br#"{"version":"99","call":{"note":"a],[b\"},{"}}"#.to_vec(),
    );
    env.publish_raw(&shared::message::group(messages)).await;

    env.wait_for_count("SELECT count(*) FROM calls", 2, WAIT)
        .await;
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters WHERE reason = 'undecodable'",
        1,
        WAIT,
    )
    .await;
    env.wait_for_ready(0, WAIT).await;
    let kept: Value = sqlx::query_scalar("SELECT message FROM dead_letters")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(
        kept,
        json!({"version": "99", "call": {"note": "a],[b\"},{"}})
    );
    let uids: Vec<String> = sqlx::query_scalar("SELECT uid FROM calls ORDER BY uid")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(uids, ["left", "right"]);
}

#[tokio::test]
async fn a_group_that_cannot_be_decompressed_is_set_aside_and_the_next_is_stored() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let lz4 = || lapin::BasicProperties::default().with_content_encoding(message::LZ4.into());
    let group = message::group(TestEnv::messages(
        &integration,
        &[call("before"), call("after")],
    ));
    let compressed = message::compress(&group);
    env.publish_raw_with(&compressed[..compressed.len() / 2], lz4())
        .await;
    env.publish_raw_with(&compressed, lz4()).await;

    env.wait_for_count("SELECT count(*) FROM calls", 2, WAIT)
        .await;
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters WHERE reason = 'undecodable'",
        1,
        WAIT,
    )
    .await;
    env.wait_for_ready(0, WAIT).await;
}

#[tokio::test]
async fn a_call_that_panics_leaves_its_group_and_becomes_poison_alone() {
    let env = TestEnv::start_with(Options {
        customize: Box::new(|s| s.broker.delivery_limit = 3),
        inspector: Some(Arc::new(|message: &shared::message::CallMessage| {
            if message.envelope().call.uid.as_ref().map(|u| u.as_str()) == Some("poison-g") {
                panic!("a bug this call triggers");
            }
        })),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let mut unbound = call("unbound-g");
    unbound["operator_id"] = json!("nobody@email.com");
    env.publish_group(
        &integration,
        &[call("mate-1"), call("poison-g"), unbound, call("mate-2")],
    )
    .await;

    env.wait_for_count(
        "SELECT count(*) FROM calls WHERE uid IN ('mate-1', 'mate-2')",
        2,
        WAIT,
    )
    .await;
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters WHERE reason = 'operator_not_found' AND uid = 'unbound-g'",
        1,
        WAIT,
    )
    .await;
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters WHERE reason = 'poison' AND uid = 'poison-g'",
        1,
        WAIT,
    )
    .await;
    env.wait_for_ready(0, WAIT).await;
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 2);
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 2);
    // Once in the group, then up to the delivery limit alone.
    let panics = metric(
        &env.worker_metrics().await,
        "callq_worker_handler_panics_total",
    );
    assert!(
        (4.0..=5.0).contains(&panics),
        "{panics} panics: one in the group, 3 alone"
    );
}

#[tokio::test]
async fn a_group_caught_in_a_database_outage_is_retried_call_by_call_and_stored_once() {
    const CALLS: usize = 6;
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let env = TestEnv::start_with_worker_behind(&proxy, Options::default()).await;
    let integration = env.integration().await;

    proxy.cut();
    let calls: Vec<_> = (0..CALLS).map(|i| call(&format!("outage-g-{i}"))).collect();
    env.publish_group(&integration, &calls).await;
    let retried = eventually(WAIT, || async {
        let n = metric_sum(
            &env.worker_metrics().await,
            "callq_worker_calls_retried_total",
        );
        if n >= CALLS as f64 {
            Ok(n)
        } else {
            Err(n)
        }
    })
    .await;
    assert!(
        retried.is_ok(),
        "the group's calls were not retried: {retried:?}"
    );
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 0);

    proxy.restore();
    env.wait_for_count("SELECT count(*) FROM calls", CALLS as i64, WAIT)
        .await;
    env.wait_for_ready(0, WAIT).await;
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 0);
}

/// Back on the work queue, a call of a group that met an outage would meet it again at
/// once; it waits on its first delay queue instead, as it would have alone.
#[tokio::test]
async fn the_calls_of_a_group_caught_in_an_outage_wait_on_the_delay_queue() {
    const CALLS: usize = 6;
    const FIRST_DELAY_MS: u64 = 600_000;
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let env = TestEnv::start_with_worker_behind(
        &proxy,
        Options {
            customize: Box::new(|s| s.broker.retry_delays_ms = vec![FIRST_DELAY_MS]),
            ..Default::default()
        },
    )
    .await;
    let integration = env.integration().await;

    proxy.cut();
    let calls: Vec<_> = (0..CALLS)
        .map(|i| call(&format!("delayed-g-{i}")))
        .collect();
    env.publish_group(&integration, &calls).await;
    let delay_queue = format!(
        "{}.retry.{FIRST_DELAY_MS}ms",
        env.settings.broker.queue_prefix
    );
    let waiting = eventually(WAIT, || async {
        let n = env.ready_in(&delay_queue).await;
        (n == CALLS as u32).then_some(n).ok_or(n)
    })
    .await;
    assert_eq!(waiting, Ok(CALLS as u32), "calls waiting in {delay_queue}");
    let metrics = env.worker_metrics().await;
    assert_eq!(
        metric_sum(&metrics, "callq_worker_calls_retried_total"),
        CALLS as f64
    );
    assert_eq!(
        metric(&metrics, "callq_worker_failed_batches_total"),
        1.0,
        "one failed transaction (the group's), none for its calls alone"
    );
    assert_eq!(env.ready_count().await, 0);
    proxy.restore();
}

async fn post_together(env: &TestEnv, integration: &Integration, bodies: &[Value]) -> Vec<u16> {
    join_all(bodies.iter().map(|body| env.post(integration, body)))
        .await
        .iter()
        .map(|answer| answer.status().as_u16())
        .collect()
}

#[tokio::test]
async fn a_group_the_broker_never_confirms_is_503_for_each_call_and_every_202_is_stored() {
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let port = proxy.port;
    let mut env = TestEnv::start_with(Options {
        worker: false,
        customize: Box::new(move |s| {
            s.broker.url = SecretString::from(format!("amqp://guest:guest@127.0.0.1:{port}/%2f"));
            s.broker.publish_in_flight = 1;
        }),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let batch =
        |name: &str| -> Vec<Value> { (0..20).map(|i| call(&format!("{name}-{i}"))).collect() };
    let before = post_together(&env, &integration, &batch("before")).await;
    assert!(before.iter().all(|s| *s == 202), "{before:?}");

    proxy.cut();
    let during = post_together(&env, &integration, &batch("during")).await;
    assert!(during.iter().all(|s| *s == 503), "{during:?}");

    proxy.restore();
    let back = eventually(WAIT, || async {
        let statuses = post_together(&env, &integration, &batch("after")).await;
        match statuses.iter().filter(|s| **s == 202).count() {
            0 => Err(statuses),
            accepted => Ok(accepted),
        }
    })
    .await;
    let accepted_after = back.expect("the gateway reconnects once the broker is back");

    // The worker talks to the broker directly: what was confirmed is stored, nothing else.
    env.start_worker().await;
    env.wait_for_count(
        "SELECT count(*) FROM calls",
        (20 + accepted_after) as i64,
        WAIT,
    )
    .await;
    assert_eq!(
        env.count("SELECT count(*) FROM calls WHERE uid LIKE 'during-%'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_worker_killed_holding_groups_loses_none_of_their_calls() {
    const GROUPS: usize = 5;
    const PER_GROUP: usize = 6;
    let mut env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    for g in 0..GROUPS {
        let calls: Vec<Value> = (0..PER_GROUP)
            .map(|i| call(&format!("kg{g}-{i}")))
            .collect();
        env.publish_group(&integration, &calls).await;
    }

    // Its database never answers, so it holds its deliveries unacked.
    let (mut child, _database) = env.spawn_stuck_worker(2).await;
    // 2 groups delivered and held (12 calls mid-batch), 3 still ready.
    env.wait_for_ready((GROUPS - 2) as u32, WAIT).await;
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 0);

    child.kill().await.unwrap();
    child.wait().await.unwrap();

    env.start_worker().await;
    let calls = (GROUPS * PER_GROUP) as i64;
    env.wait_for_count("SELECT count(*) FROM calls", calls, WAIT)
        .await;
    assert_eq!(
        env.count("SELECT count(DISTINCT uid) FROM calls").await,
        calls
    );
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 0);
    env.wait_for_ready(0, WAIT).await;
}

#[tokio::test]
async fn a_group_that_keeps_killing_workers_is_set_aside_call_by_call() {
    let mut env = TestEnv::start_with(Options {
        worker: false,
        customize: Box::new(|s| s.broker.delivery_limit = 1),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let calls: Vec<Value> = (0..3).map(|i| call(&format!("doomed-{i}"))).collect();
    env.publish_group(&integration, &calls).await;

    // Taken and lost twice: over a delivery limit of 1, the broker dead-letters the group.
    for back_in_queue in [1, 0] {
        let (mut child, _database) = env.spawn_stuck_worker(1).await;
        env.wait_for_ready(0, WAIT).await;
        child.kill().await.unwrap();
        child.wait().await.unwrap();
        env.wait_for_ready(back_in_queue, WAIT).await;
    }

    env.start_worker().await;
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters WHERE reason = 'poison' AND uid LIKE 'doomed-%'",
        3,
        WAIT,
    )
    .await;
    let uids: Vec<String> =
        sqlx::query_scalar("SELECT message->'call'->>'uid' FROM dead_letters ORDER BY 1")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(uids, ["doomed-0", "doomed-1", "doomed-2"]);
    assert_eq!(env.count("SELECT count(*) FROM calls").await, 0);
}
