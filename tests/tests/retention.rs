//! `admin retention apply`: calls and dead letters past their retention are removed (whole
//! monthly partitions dropped, the month the cut falls in and the catch-all partition row by
//! row), what is recent stays, and what remains is consistent: every call has its key and
//! every key its call, clients stay, and a removed call sent again is stored anew.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use pipeline_tests::{call, child_env, Integration, TestEnv};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

/// Moves a stored call's first-stored time `age` into the past (its row moves to the partition
/// of that month, or to calls_default if there is none), with its key.
async fn backdate(env: &TestEnv, integration: &Integration, uid: &str, age: &str) {
    let mut tx = env.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL timezone = 'UTC'")
        .execute(&mut *tx)
        .await
        .unwrap();
    for table in ["calls", "call_keys"] {
        let moved = sqlx::query(&format!(
            "UPDATE {table} SET created_at = now() - $3::interval
             WHERE integration_id = $1 AND uid = $2"
        ))
        .bind(integration.id)
        .bind(uid)
        .bind(age)
        .execute(&mut *tx)
        .await
        .unwrap();
        assert_eq!(moved.rows_affected(), 1, "{table} {uid}");
    }
    tx.commit().await.unwrap();
}

async fn partition_for(env: &TestEnv, age: &str) -> String {
    sqlx::query_scalar("SELECT calls_partition_ensure(now() - $1::interval)")
        .bind(age)
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

async fn uids(env: &TestEnv, table: &str) -> BTreeSet<String> {
    sqlx::query_scalar(&format!("SELECT uid FROM {table}"))
        .fetch_all(&env.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

fn retention_apply(env: &TestEnv, calls_days: u32, dead_letters_days: u32) -> String {
    let out = Command::new(pipeline_tests::binary("admin"))
        .envs(child_env(env))
        .env("APP_RETENTION__CALLS_DAYS", calls_days.to_string())
        .env(
            "APP_RETENTION__DEAD_LETTERS_DAYS",
            dead_letters_days.to_string(),
        )
        .env("APP_RETENTION__BATCH_ROWS", "1")
        .args(["retention", "apply"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn old_calls_and_dead_letters_go_recent_ones_stay_and_the_rest_is_consistent() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    let all = [
        "whole-month",
        "cut-month-old",
        "default-old",
        "cut-month-kept",
        "default-kept",
        "recent",
    ];
    for uid in all {
        let mut body = call(uid);
        body["client"] = json!({"id": "client-1", "first_name": "Ann"});
        assert_eq!(env.post(&integration, &body).await.status(), 202);
    }
    let mut lost = call("lost-old");
    lost["operator_id"] = json!("nobody@email.com");
    assert_eq!(env.post(&integration, &lost).await.status(), 202);
    lost["uid"] = json!("lost-recent");
    assert_eq!(env.post(&integration, &lost).await.status(), 202);
    env.wait_for_count("SELECT count(*) FROM calls", all.len() as i64, WAIT)
        .await;
    env.wait_for_count("SELECT count(*) FROM dead_letters", 2, WAIT)
        .await;

    // Retention of 90 days: a month long past gets a partition of its own (dropped whole);
    // the month of the cut gets one too (rows on both sides of the cut); the others land in
    // calls_default.
    let whole = partition_for(&env, "400 days").await;
    backdate(&env, &integration, "whole-month", "400 days").await;
    partition_for(&env, "90 days 1 hour").await;
    backdate(&env, &integration, "cut-month-old", "90 days 1 hour").await;
    partition_for(&env, "89 days 23 hours").await;
    backdate(&env, &integration, "cut-month-kept", "89 days 23 hours").await;
    backdate(&env, &integration, "default-old", "200 days").await;
    backdate(&env, &integration, "default-kept", "30 days").await;
    sqlx::query("UPDATE dead_letters SET last_failed_at = now() - interval '40 days' WHERE uid = 'lost-old'")
        .execute(&env.pool)
        .await
        .unwrap();

    let said = retention_apply(&env, 90, 30);
    assert!(said.contains("1 dead letter(s)"), "{said}");

    let kept: BTreeSet<String> = ["cut-month-kept", "default-kept", "recent"]
        .map(String::from)
        .into();
    assert_eq!(uids(&env, "calls").await, kept);
    assert_eq!(uids(&env, "call_keys").await, kept);
    assert_eq!(
        env.count(
            "SELECT count(*) FROM call_keys k JOIN calls c ON c.id = k.call_id AND c.created_at = k.created_at"
        )
        .await,
        3
    );
    let dropped: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(&whole)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(dropped, None, "{whole} should be dropped");
    assert_eq!(
        uids(&env, "dead_letters").await,
        BTreeSet::from(["lost-recent".to_owned()])
    );
    assert_eq!(env.count("SELECT count(*) FROM clients").await, 1);
    assert_eq!(env.get_call(&integration, "whole-month").await.0, 404);
    assert_eq!(env.get_call(&integration, "default-kept").await.0, 200);

    // A removed call sent again is a new call.
    assert_eq!(
        env.post(&integration, &call("whole-month")).await.status(),
        202
    );
    env.wait_for_count("SELECT count(*) FROM calls", 4, WAIT)
        .await;
    let (status, doc) = env.get_call(&integration, "whole-month").await;
    assert_eq!(status, 200);
    assert_eq!(doc["data"]["attributes"]["status"], "stored");
}

#[tokio::test]
async fn retention_at_zero_days_removes_nothing_and_creates_the_coming_partitions() {
    let env = TestEnv::start().await;
    let integration = env.integration().await;
    assert_eq!(env.post(&integration, &call("ancient")).await.status(), 202);
    env.wait_for_count("SELECT count(*) FROM calls", 1, WAIT)
        .await;
    backdate(&env, &integration, "ancient", "3000 days").await;

    let said = retention_apply(&env, 0, 0);
    assert!(said.starts_with("removed 0 call(s)"), "{said}");

    assert_eq!(env.count("SELECT count(*) FROM calls").await, 1);
    let ahead: i64 = env
        .count(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'calls'::regclass
               AND c.relname::text >= 'calls_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')",
        )
        .await;
    // This month and the two after it (retention.partitions_ahead_months).
    assert_eq!(ahead, 3);
}
