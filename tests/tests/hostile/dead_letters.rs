//! Messages the database refuses even so: dead-lettered at once and always recorded.
//!
//! The gateway refuses NUL, so these messages are put on the work queue directly, as a
//! gateway of an older version would have published them.

use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions};
use lapin::types::AMQPValue;
use pipeline_tests::{call, eventually, metric, Integration, Options, TestEnv, AMQP_URL};
use reqwest::Method;
use serde_json::{json, Value};
use shared::broker::Publisher;
use shared::message;

/// Far shorter than the retry schedule these tests set: what appears within it was not
/// retried.
const WAIT: Duration = Duration::from_secs(15);
/// The retry schedule: one step of an hour, so a call retried would not be seen again.
const LONG_RETRY_MS: u64 = 3_600_000;

/// Stands for a NUL in a custom field value until the message is encoded.
const MARK: &str = "NUL-GOES-HERE";

async fn env(customize: impl FnOnce(&mut shared::config::Settings) + Send + 'static) -> TestEnv {
    TestEnv::start_with(Options {
        worker: false,
        customize: Box::new(move |settings| {
            settings.broker.retry_delays_ms = vec![LONG_RETRY_MS];
            customize(settings);
        }),
        ..Default::default()
    })
    .await
}

/// A call whose custom field `note` holds "before\0after": JSON and the worker's decoder
/// accept it, Postgres does not.
fn call_with_nul(integration: &Integration, uid: &str) -> Vec<u8> {
    let mut body = call(uid);
    body["custom_fields"] = json!({ "note": format!("before{MARK}after") });
    let encoded = TestEnv::messages(integration, &[body]).remove(0);
    let text = String::from_utf8(encoded).expect("JSON is UTF-8");
    assert!(text.contains(MARK));
    text.replace(MARK, "\\u0000").into_bytes()
}

/// Publishes `calls` as one group message onto the work queue, as a gateway under load does.
async fn publish_group(env: &TestEnv, calls: Vec<Vec<u8>>) {
    let count = calls.len();
    Publisher::new(env.settings.broker.clone(), "test")
        .publish_group(&message::group(calls), count)
        .await
        .expect("the broker confirmed the group");
}

fn parked_queue(env: &TestEnv) -> String {
    format!("{}.dead.parked", env.settings.broker.queue_prefix)
}

#[tokio::test]
async fn a_call_postgres_refuses_is_dead_lettered_at_once_and_the_rest_of_its_batch_is_stored() {
    let mut env = env(|_| {}).await;
    let integration = env.integration().await;
    let bad = call_with_nul(&integration, "refused");
    let good = TestEnv::messages(
        &integration,
        &[call("good-1"), call("good-2"), call("good-3")],
    );
    publish_group(&env, vec![good[0].clone(), bad.clone(), good[1].clone()]).await;
    env.publish_raw(&good[2]).await;

    env.start_worker().await;
    env.wait_for_count("SELECT count(*) FROM calls", 3, WAIT)
        .await;
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters WHERE reason = 'database_rejected'",
        1,
        WAIT,
    )
    .await;
    let (id, uid, detail, attempts, encoding): (uuid::Uuid, String, String, i32, String) =
        sqlx::query_as("SELECT id, uid, detail, attempts, message_encoding FROM dead_letters")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(uid, "refused");
    assert!(detail.contains("SQLSTATE 22P05"), "{detail}");
    assert!(!detail.contains("postgres://"), "{detail}");
    assert_eq!(attempts, 1, "set aside at once, never retried");
    assert_eq!(encoding, "text", "jsonb cannot hold the NUL");
    assert_eq!(
        env.count("SELECT count(*) FROM calls WHERE uid = 'refused'")
            .await,
        0
    );
    let (_, shown) = env.get_call(&integration, "refused").await;
    assert_eq!(shown["data"]["attributes"]["reason"], "database_rejected");

    let (status, letter) = env
        .admin(Method::GET, &format!("/api/v1/dead_letters/{id}"))
        .await;
    assert_eq!(status, 200);
    let attributes = &letter["data"]["attributes"];
    assert_eq!(attributes["message_encoding"], "text");
    let original: Value = serde_json::from_slice(&bad).unwrap();
    assert_eq!(attributes["message"], original, "shown as it was sent");
    assert_eq!(
        attributes["message"]["call"]["custom_fields"]["note"]["value"],
        "before\0after"
    );

    // Replayed, the very message goes back onto the work queue.
    env.stop_worker().await;
    let (status, _) = env
        .admin(
            Method::POST,
            &format!("/api/v1/dead_letters/replay?id={id}"),
        )
        .await;
    assert_eq!(status, 200);
    let queued = env.peek_work_queue().await;
    assert_eq!(queued.len(), 1);
    let replayed: Value = serde_json::from_slice(&queued[0].1).unwrap();
    assert_eq!(replayed, original);
}

#[tokio::test]
async fn a_message_whose_dead_letter_cannot_be_recorded_is_parked_not_cycled() {
    let mut env = env(|settings| settings.broker.dead_delivery_limit = 3).await;
    let integration = env.integration().await;
    // This test's own database refuses every dead letter, whatever it holds.
    for statement in [
        "CREATE FUNCTION refuse_dead_letters() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             RAISE EXCEPTION 'dead letters refused by the test' USING ERRCODE = 'check_violation';
         END $$",
        "CREATE TRIGGER refuse_dead_letters BEFORE INSERT ON dead_letters
         FOR EACH ROW EXECUTE FUNCTION refuse_dead_letters()",
    ] {
        sqlx::query(statement).execute(&env.pool).await.unwrap();
    }
    let bad = call_with_nul(&integration, "unrecordable");
    env.publish_raw(&bad).await;
    env.start_worker().await;

    let parked = parked_queue(&env);
    let dead = format!("{}.dead", env.settings.broker.queue_prefix);
    let settled = eventually(Duration::from_secs(60), || async {
        let counts = (env.ready_in(&parked).await, env.ready_in(&dead).await);
        (counts == (1, 0)).then_some(()).ok_or(counts)
    })
    .await;
    if let Err((parked_count, dead_count)) = settled {
        panic!("{parked_count} parked and {dead_count} in the dead queue; expected 1 and 0");
    }
    assert_eq!(
        env.ready_count().await,
        0,
        "nothing cycles on the work queue"
    );
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 0);
    let sample = format!("callq_worker_queue_messages{{queue=\"{parked}\"}}");
    let exposed = eventually(WAIT, || async {
        let value = metric(&env.worker_metrics().await, &sample);
        (value == 1.0).then_some(()).ok_or(value)
    })
    .await;
    assert_eq!(exposed, Ok(()), "the parked count is exposed");

    // The cause fixed, the parked message is moved back to the dead queue, as the README
    // says, and recorded with the reason it was set aside for.
    sqlx::query("DROP TRIGGER refuse_dead_letters ON dead_letters")
        .execute(&env.pool)
        .await
        .unwrap();
    let (body, reason) = move_back(&parked, &dead).await;
    assert_eq!(body, bad);
    assert_eq!(reason.as_deref(), Some("database_rejected"));
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters WHERE reason = 'database_rejected' AND uid = 'unrecordable'",
        1,
        WAIT,
    )
    .await;
    assert_eq!(env.ready_in(&parked).await, 0);
}

/// Takes the one parked message and publishes it onto the dead queue with its headers;
/// returns its body and the reason it was set aside for.
async fn move_back(parked: &str, dead: &str) -> (Vec<u8>, Option<String>) {
    let conn = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
        .await
        .expect("broker");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirms");
    let message = channel
        .basic_get(parked.into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
        .expect("a parked message");
    let reason = message.properties.headers().as_ref().and_then(|h| {
        match h.inner().get("x-callq-set-aside-reason") {
            Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into()),
            _ => None,
        }
    });
    let body = message.delivery.data.clone();
    let confirmation = channel
        .basic_publish(
            "".into(),
            dead.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            &body,
            message.properties.clone(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert_eq!(confirmation, lapin::Confirmation::Ack(None));
    message
        .delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .expect("ack");
    shared::broker::close(&conn, "").await;
    (body, reason)
}
