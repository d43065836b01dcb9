//! Reprobing stored calls' media on purpose, through the CLI and the admin API: by filter,
//! as a dry run, bounded per request; the probes read back from `<prefix>.probes`.

use std::collections::BTreeSet;
use std::process::Output;
use std::time::Duration;

use pipeline_tests::{call, child_env, Integration, Options, TestEnv, AMQP_URL};
use reqwest::Method;
use shared::broker::ProbeTopology;
use shared::config::Stage;
use shared::probe_work::{Probe, ProbeWork};

const WAIT: Duration = Duration::from_secs(30);

/// Stored calls of two integrations, their media 'pending' (nothing probed, nothing queued)
/// but for those set by hand: A's a-0, a-1 and a-2 and B's b-0 unreachable, A's a-3
/// reachable, and a-2 received in 2020.
struct Stored {
    env: TestEnv,
    a: Integration,
    b: Integration,
}

async fn stored() -> Stored {
    let env = TestEnv::start_with(Options {
        customize: Box::new(|s| {
            s.media.probe = false;
            // Nothing but the test may take probe work off the queue.
            s.worker.stages = vec![Stage::Calls];
        }),
        ..Default::default()
    })
    .await;
    let (a, b) = (env.integration().await, env.integration().await);
    let a_calls = ["a-0", "a-1", "a-2", "a-3", "a-4", "a-5"].map(|uid| (&a, uid));
    let b_calls = ["b-0", "b-1", "b-2"].map(|uid| (&b, uid));
    for (integration, uid) in a_calls.into_iter().chain(b_calls) {
        assert_eq!(env.post(integration, &call(uid)).await.status(), 202);
    }
    env.wait_for_count("SELECT count(*) FROM calls", 9, WAIT)
        .await;
    sqlx::query(
        "UPDATE calls SET media_status = 'unreachable'
         WHERE (integration_id = $1 AND uid IN ('a-0', 'a-1', 'a-2'))
            OR (integration_id = $2 AND uid = 'b-0')",
    )
    .bind(a.id)
    .bind(b.id)
    .execute(&env.pool)
    .await
    .expect("mark unreachable");
    sqlx::query(
        "UPDATE calls SET media_status = 'reachable' WHERE integration_id = $1 AND uid = 'a-3'",
    )
    .bind(a.id)
    .execute(&env.pool)
    .await
    .expect("mark reachable");
    sqlx::query("UPDATE calls SET received_at = '2020-06-01T00:00:00Z' WHERE integration_id = $1 AND uid = 'a-2'")
        .bind(a.id)
        .execute(&env.pool)
        .await
        .expect("receive in 2020");
    Stored { env, a, b }
}

fn probe_queue(env: &TestEnv) -> String {
    ProbeTopology::new(&env.settings.broker.queue_prefix, &env.settings.media).work_queue
}

/// Takes every message off the probe queue: (messages, their probes).
async fn take_probes(env: &TestEnv) -> (usize, Vec<Probe>) {
    let conn = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
        .await
        .expect("broker");
    let channel = conn.create_channel().await.expect("channel");
    let (mut messages, mut probes) = (0, Vec::new());
    let no_ack = lapin::options::BasicGetOptions { no_ack: true };
    while let Some(message) = channel
        .basic_get(probe_queue(env).as_str().into(), no_ack)
        .await
        .expect("basic.get")
    {
        let encoding = message.properties.content_encoding().as_ref();
        let body =
            shared::message::decompress(encoding.map(|e| e.as_str()), &message.delivery.data)
                .expect("a readable body");
        probes.extend(ProbeWork::from_bytes(&body).expect("probe work").probes);
        messages += 1;
    }
    shared::broker::close(&conn, "").await;
    (messages, probes)
}

fn uids(probes: &[Probe]) -> BTreeSet<&str> {
    probes.iter().map(|p| p.uid.as_str()).collect()
}

async fn admin_cli(env: &TestEnv, args: &[&str], replay_batch: usize) -> Output {
    tokio::process::Command::new(pipeline_tests::binary("admin"))
        .envs(child_env(env))
        .env("APP_WORKER__REPLAY_BATCH", replay_batch.to_string())
        .args(args)
        .output()
        .await
        .expect("run admin")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "admin failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn the_cli_counts_on_a_dry_run_and_queues_exactly_the_matching_probes() {
    let Stored { env, a, b: _ } = stored().await;
    let a_id = a.id.to_string();
    let unreachable_of_a = [
        "media",
        "reprobe",
        "--status",
        "unreachable",
        "--integration",
        &a_id,
    ];

    let dry = admin_cli(
        &env,
        &[unreachable_of_a.as_slice(), &["--dry-run"]].concat(),
        500,
    )
    .await;
    assert_eq!(stdout(&dry), "3 calls would be reprobed");
    let every = admin_cli(&env, &["media", "reprobe", "--dry-run"], 500).await;
    assert_eq!(stdout(&every), "9 calls would be reprobed");
    let in_2020 = admin_cli(
        &env,
        &[
            "media",
            "reprobe",
            "--received-after",
            "2020-01-01T00:00:00Z",
            "--received-before",
            "2021-01-01T00:00:00Z",
            "--dry-run",
        ],
        500,
    )
    .await;
    assert_eq!(stdout(&in_2020), "1 calls would be reprobed");
    assert_eq!(env.ready_in(&probe_queue(&env)).await, 0);

    // Pages of 2: three calls go as two messages.
    let run = admin_cli(&env, &unreachable_of_a, 2).await;
    assert_eq!(stdout(&run), "queued 3 probes");
    let (messages, probes) = take_probes(&env).await;
    assert_eq!(messages, 2);
    assert_eq!(uids(&probes), BTreeSet::from(["a-0", "a-1", "a-2"]));
    assert_eq!(probes.len(), 3);
    for probe in &probes {
        assert_eq!(probe.integration_id, a.id);
        assert_eq!(probe.media_url, "https://recordings.invalid/x.wav");
        assert_eq!((probe.attempts, probe.deferrals), (0, 0));
    }
}

#[tokio::test]
async fn the_cli_refuses_an_unknown_status_naming_the_accepted_ones() {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let out = admin_cli(&env, &["media", "reprobe", "--status", "gone"], 500).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("use one of pending, reachable, unreachable, refused"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_admin_api_reprobes_by_filter_and_bounds_a_request() {
    let Stored { env, a, b } = stored().await;

    let (status, dry) = env
        .admin(
            Method::POST,
            &format!(
                "/api/v1/media/reprobe?status=unreachable&integration_id={}&dry_run=true",
                a.id
            ),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["meta"]["matched"], 3);
    assert_eq!(dry["meta"]["queued"], 0);
    assert_eq!(dry["meta"]["dry_run"], true);
    assert_eq!(env.ready_in(&probe_queue(&env)).await, 0);

    let (status, done) = env
        .admin(
            Method::POST,
            &format!(
                "/api/v1/media/reprobe?status=unreachable&integration_id={}",
                b.id
            ),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["meta"]["matched"], 1);
    assert_eq!(done["meta"]["queued"], 1);
    assert_eq!(done["meta"]["dry_run"], false);
    assert!(done["meta"]["next_after"].is_null(), "{done}");
    let (_, probes) = take_probes(&env).await;
    assert_eq!(uids(&probes), BTreeSet::from(["b-0"]));
    assert_eq!(probes[0].integration_id, b.id);

    // Six calls of A, at most four a request: the answer says where to go on.
    let all_of_a = format!("/api/v1/media/reprobe?integration_id={}", a.id);
    let (status, first) = env
        .admin(Method::POST, &format!("{all_of_a}&limit=4"))
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (
            first["meta"]["matched"].as_u64(),
            first["meta"]["queued"].as_u64()
        ),
        (Some(6), Some(4))
    );
    let after = first["meta"]["next_after"]
        .as_str()
        .expect("calls are left");
    let (status, rest) = env
        .admin(Method::POST, &format!("{all_of_a}&limit=4&after={after}"))
        .await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(
        (
            rest["meta"]["matched"].as_u64(),
            rest["meta"]["queued"].as_u64()
        ),
        (Some(2), Some(2))
    );
    assert!(rest["meta"]["next_after"].is_null(), "{rest}");
    let (_, probes) = take_probes(&env).await;
    assert_eq!(probes.len(), 6);
    assert_eq!(
        uids(&probes),
        BTreeSet::from(["a-0", "a-1", "a-2", "a-3", "a-4", "a-5"])
    );
}

#[tokio::test]
async fn the_admin_api_refuses_a_bad_status_and_a_missing_token() {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let (status, refused) = env
        .admin(Method::POST, "/api/v1/media/reprobe?status=gone")
        .await;
    assert_eq!(status, 400, "{refused}");
    let detail = refused["errors"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("use one of pending, reachable, unreachable, refused"),
        "{detail}"
    );

    let anonymous = env
        .http
        .post(format!("{}/api/v1/media/reprobe", env.base_url))
        .send()
        .await
        .expect("POST");
    assert_eq!(anonymous.status(), 401);
    assert_eq!(env.ready_in(&probe_queue(&env)).await, 0);
}
