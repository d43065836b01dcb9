//! Prometheus metrics of the gateway and the worker, as a scraper sees them.

use std::time::Duration;

use pipeline_tests::{call, eventually, metric, metric_sum, Options, TestEnv};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn the_gateway_counts_calls_accepted_refused_by_cause_and_published() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    assert_eq!(
        env.post(&integration, &call("counted-1")).await.status(),
        202
    );
    let mut invalid = call("counted-2");
    invalid["started_at"] = json!("yesterday");
    assert_eq!(env.post(&integration, &invalid).await.status(), 422);
    let anonymous = env
        .http
        .post(&integration.url)
        .json(&call("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let response = env
        .http
        .get(format!("{}/metrics", env.base_url))
        .send()
        .await
        .unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    assert_eq!(
        metric(&text, "callq_gateway_calls_accepted_total"),
        1.0,
        "{text}"
    );
    assert_eq!(metric(&text, "callq_gateway_calls_published_total"), 1.0);
    assert_eq!(
        metric(
            &text,
            r#"callq_gateway_calls_refused_total{cause="unprocessable_entity"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            r#"callq_gateway_calls_refused_total{cause="unauthorized"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn the_worker_counts_stored_and_dead_lettered_calls_and_queue_depths() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    assert_eq!(env.post(&integration, &call("kept")).await.status(), 202);
    let mut lost = call("lost");
    lost["operator_id"] = json!("nobody@email.com");
    assert_eq!(env.post(&integration, &lost).await.status(), 202);
    env.wait_for_count("SELECT count(*) FROM calls", 1, WAIT)
        .await;
    env.wait_for_count("SELECT count(*) FROM dead_letters", 1, WAIT)
        .await;

    let text = env.worker_metrics().await;
    assert_eq!(
        metric(&text, "callq_worker_calls_stored_total"),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"callq_worker_calls_dead_lettered_total{reason="operator_not_found"}"#
        ),
        1.0
    );
    let depth = format!(
        r#"callq_worker_queue_messages{{queue="{}"}}"#,
        env.work_queue()
    );
    let sampled = eventually(WAIT, || async {
        let text = env.worker_metrics().await;
        if text.contains(&depth) {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
    assert!(sampled.is_ok(), "{depth} missing: {sampled:?}");
}

#[tokio::test]
async fn a_backlog_is_written_in_a_few_transactions_and_the_worker_counts_them() {
    const CALLS: usize = 40;
    let mut env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    // One at a time, so each is a message of its own: batching, not grouping, is counted.
    for i in 0..CALLS {
        let answer = env.post(&integration, &call(&format!("backlog-{i}"))).await;
        assert_eq!(answer.status(), 202);
    }
    env.wait_for_ready(CALLS as u32, WAIT).await;

    env.settings.worker.lanes = 1;
    // Long enough for the whole backlog to arrive before a batch closes, even on a busy
    // machine; the batch size (500) is not reached.
    env.settings.worker.batch_wait_ms = 500;
    env.start_worker().await;
    env.wait_for_count("SELECT count(*) FROM calls", CALLS as i64, WAIT)
        .await;

    let text = env.worker_metrics().await;
    assert_eq!(
        metric(&text, "callq_worker_calls_stored_total"),
        CALLS as f64
    );
    let batches = metric(&text, "callq_worker_batches_total");
    assert!(
        (1.0..=4.0).contains(&batches),
        "{batches} transactions for a backlog of {CALLS} messages: not batched"
    );
}

#[tokio::test]
async fn after_real_calls_the_latency_histograms_and_gauges_have_samples() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    for i in 0..3 {
        let answer = env.post(&integration, &call(&format!("timed-{i}"))).await;
        assert_eq!(answer.status(), 202);
    }
    env.wait_for_count("SELECT count(*) FROM calls", 3, WAIT)
        .await;

    let gateway = env.gateway_metrics().await;
    let posts = metric_sum(
        &gateway,
        "callq_gateway_http_request_duration_seconds_count",
    );
    assert!(posts >= 3.0, "{gateway}");
    assert!(
        gateway.contains(r#"status="2xx""#)
            && gateway.contains(r#"route="/api/v1/integrations/{integration_id}/phone_calls""#),
        "requests not labelled by route and status class: {gateway}"
    );
    assert!(metric(&gateway, "callq_gateway_publish_confirm_seconds_count") >= 1.0);
    assert_eq!(metric(&gateway, "callq_gateway_broker_connections_up"), 1.0);
    assert!(metric(&gateway, "callq_gateway_broker_channels_up") >= 1.0);
    assert!(metric(&gateway, "callq_gateway_db_pool_connections") >= 1.0);
    assert_eq!(metric(&gateway, "callq_gateway_db_pool_max"), 4.0);
    assert_eq!(metric_sum(&gateway, "callq_gateway_build_info"), 1.0);

    let worker = env.worker_metrics().await;
    assert!(metric(&worker, "callq_worker_batch_write_seconds_count") >= 1.0);
    assert_eq!(
        metric(&worker, "callq_worker_post_to_row_seconds_count"),
        3.0
    );
    assert!(metric(&worker, "callq_worker_post_to_row_seconds_sum") > 0.0);
    assert!(metric(&worker, "callq_worker_db_pool_connections") >= 1.0);
    assert_eq!(metric_sum(&worker, "callq_worker_build_info"), 1.0);
    assert_eq!(
        metric(&worker, r#"callq_worker_broker_sessions_up{stage="calls"}"#),
        1.0
    );

    // Sampled every few seconds: a consumer on the work queue and, nothing being ready, an
    // oldest age of 0.
    let queue = env.work_queue();
    let consumers = format!(r#"callq_worker_queue_consumers{{queue="{queue}"}}"#);
    let age = format!(r#"callq_worker_queue_oldest_ready_age_seconds{{queue="{queue}"}} 0"#);
    let sampled = eventually(WAIT, || async {
        let text = env.worker_metrics().await;
        if metric(&text, &consumers) >= 1.0 && text.lines().any(|l| l == age) {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
    assert!(sampled.is_ok(), "{consumers} or {age} missing: {sampled:?}");
}
