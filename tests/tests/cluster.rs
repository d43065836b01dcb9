//! A RabbitMQ cluster losing nodes under load: the gateway and the worker move to another
//! node when theirs stops, the quorum queues live on through the loss of any one node, and
//! every call answered 2xx is stored, once. The cluster is a private one of three nodes
//! (`deploy/rabbitmq-cluster.sh`), started by the test and stopped after it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipeline_tests::cluster::Cluster;
use pipeline_tests::{call, eventually, Integration, Options, TestEnv, AMQP_URL};
use secrecy::SecretString;
use shared::broker::Nodes;
use tokio::task::{block_in_place, JoinSet};
use uuid::Uuid;

/// How long the pipeline may take to answer 2xx again after a node stops, to find a
/// connection that has just moved, or to store what it accepted: far above what it takes (a
/// few seconds), far below a hang.
const RECOVERY: Duration = Duration::from_secs(90);
/// Calls answered 2xx after a node's loss that show the pipeline accepts calls again.
const ACCEPTED_AGAIN: usize = 20;
const SENDERS: usize = 4;
/// Between one sender's calls: a steady stream, leaving the two cores to the three nodes.
const PACE: Duration = Duration::from_millis(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_call_answered_2xx_is_stored_once_while_the_cluster_loses_nodes() {
    let Some(cluster) = block_in_place(Cluster::start) else {
        return;
    };
    let urls = cluster.urls();
    let env = TestEnv::start_with(Options {
        customize: Box::new(move |s| {
            s.broker.urls = urls;
            // Probes of the test's unreachable recordings would only add traffic.
            s.media.probe = false;
        }),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    let work_queue = env.work_queue();
    let load = Load::start(&env, &integration);
    load.wait_for_accepted_since(0).await;

    let gateway = once_known(|| cluster.connected("gateway").first().copied()).await;
    lose_node(
        &cluster,
        &load,
        &work_queue,
        gateway,
        "the gateway's node",
        true,
    )
    .await;

    let worker = once_known(|| cluster.connected("worker").first().copied()).await;
    lose_node(
        &cluster,
        &load,
        &work_queue,
        worker,
        "the worker's node",
        true,
    )
    .await;

    let leader = once_known(|| cluster.leader(&work_queue)).await;
    lose_node(
        &cluster,
        &load,
        &work_queue,
        leader,
        "the work queue leader's node",
        true,
    )
    .await;

    // The last loss stays: what was accepted must be stored by two nodes of three.
    let leader = once_known(|| cluster.leader(&work_queue)).await;
    let follower = (1..=3).find(|&n| n != leader).expect("a follower");
    lose_node(
        &cluster,
        &load,
        &work_queue,
        follower,
        "a follower's node",
        false,
    )
    .await;

    let answers = load.stop().await;
    let accepted: Vec<String> = answers
        .iter()
        .filter(|a| (200..300).contains(&a.status))
        .map(|a| a.uid.clone())
        .collect();
    let unexpected: Vec<_> = answers
        .iter()
        .filter(|a| !(200..300).contains(&a.status) && a.status != 503)
        .collect();
    assert!(
        unexpected.is_empty(),
        "answers other than 2xx and 503: {unexpected:?}"
    );

    let stored = "SELECT count(*) FROM calls WHERE uid = ANY($1)";
    let last = eventually(RECOVERY, || async {
        let n: i64 = sqlx::query_scalar(stored)
            .bind(&accepted)
            .fetch_one(&env.pool)
            .await
            .expect(stored);
        (n == accepted.len() as i64).then_some(n).ok_or(n)
    })
    .await;
    let stored_count = last.unwrap_or_else(|n| {
        panic!(
            "{n} of the {} calls answered 2xx are stored",
            accepted.len()
        )
    });
    let duplicates = env
        .count("SELECT count(*) - count(DISTINCT (integration_id, uid)) FROM calls")
        .await;
    assert_eq!(duplicates, 0, "calls stored twice");
    eprintln!(
        "cluster: {} answered 2xx, {stored_count} of them stored, {} answered 503, \
         {duplicates} duplicates",
        accepted.len(),
        answers.iter().filter(|a| a.status == 503).count(),
    );
}

/// A process whose first broker node is down connects to the next, and a reconnect starts
/// after the node it was last on, so it skips the dead one every time after the first.
#[tokio::test]
async fn a_connection_skips_a_dead_node_for_the_next() {
    let mut settings = shared::config::Settings::defaults().broker;
    settings.urls = vec![
        SecretString::from(dead_node()),
        SecretString::from(AMQP_URL),
    ];
    settings.connect_timeout_ms = 3000;
    let nodes = Nodes::new(&settings);
    for attempt in 0..3 {
        let connection = nodes
            .connect("test-nodes")
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
        shared::broker::close(&connection, "").await;
    }
}

#[tokio::test]
async fn a_gateway_and_worker_whose_first_node_is_down_accept_and_store_calls() {
    let env = TestEnv::start_with(Options {
        customize: Box::new(|s| {
            s.broker.urls = vec![
                SecretString::from(dead_node()),
                SecretString::from(AMQP_URL),
            ];
        }),
        ..Default::default()
    })
    .await;
    let integration = env.integration().await;
    for uid in ["first", "second", "third"] {
        assert_eq!(env.post(&integration, &call(uid)).await.status(), 202);
    }
    env.wait_for_count("SELECT count(*) FROM calls", 3, RECOVERY)
        .await;
}

/// An address nothing listens on.
fn dead_node() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
}

/// Stops node `n` under load, waits until calls sent after it went are answered 2xx again,
/// and starts it again if `restart`. A node is stopped only once every member of the work
/// queue runs: a node started again a moment ago may not have its member back yet, and
/// losing another node then would leave the queue without a majority, which no client can
/// ride out.
async fn lose_node(cluster: &Cluster, load: &Load, queue: &str, n: u8, what: &str, restart: bool) {
    eventually(RECOVERY, || async {
        let online = block_in_place(|| cluster.online(queue));
        (online == 3).then_some(()).ok_or(online)
    })
    .await
    .unwrap_or_else(|online| panic!("{online} of the work queue's 3 members run before {what}"));
    block_in_place(|| cluster.stop_node(n));
    let phase = load.next_phase();
    eprintln!("cluster: stopped node {n} ({what})");
    load.wait_for_accepted_since(phase).await;
    if restart {
        block_in_place(|| cluster.start_node(n));
    }
}

/// A node that `find` may not know right now: a connection between nodes, a queue electing
/// its leader.
async fn once_known(find: impl Fn() -> Option<u8>) -> u8 {
    eventually(RECOVERY, || async { block_in_place(&find).ok_or(()) })
        .await
        .expect("the node is known in time")
}

#[derive(Debug)]
struct Answer {
    uid: String,
    status: u16,
    phase: u32,
}

/// Senders posting calls, each with a uid of its own, until stopped; each answer is kept
/// with the phase in which its request was sent.
struct Load {
    answers: Arc<Mutex<Vec<Answer>>>,
    phase: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    senders: JoinSet<()>,
}

impl Load {
    fn start(env: &TestEnv, integration: &Integration) -> Self {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let phase = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut senders = JoinSet::new();
        for _ in 0..SENDERS {
            let (answers, phase, stop) = (answers.clone(), phase.clone(), stop.clone());
            let http = env.http.clone();
            let (url, token) = (integration.url.clone(), integration.token.clone());
            senders.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let uid = Uuid::new_v4().to_string();
                    let sent_in = phase.load(Ordering::SeqCst);
                    let status = http
                        .post(&url)
                        .header("Authorization", &token)
                        .json(&call(&uid))
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    answers.lock().expect("answers").push(Answer {
                        uid,
                        status,
                        phase: sent_in,
                    });
                    tokio::time::sleep(PACE).await;
                }
            });
        }
        Self {
            answers,
            phase,
            stop,
            senders,
        }
    }

    /// Starts a phase: requests sent from now on count as sent after what just happened.
    fn next_phase(&self) -> u32 {
        self.phase.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Waits until [`ACCEPTED_AGAIN`] requests sent in `phase` or later were answered 2xx.
    async fn wait_for_accepted_since(&self, phase: u32) {
        let accepted = || {
            self.answers
                .lock()
                .expect("answers")
                .iter()
                .filter(|a| a.phase >= phase && (200..300).contains(&a.status))
                .count()
        };
        let last = eventually(RECOVERY, || async {
            let n = accepted();
            (n >= ACCEPTED_AGAIN).then_some(n).ok_or(n)
        })
        .await;
        if let Err(n) = last {
            let statuses: HashSet<u16> = self
                .answers
                .lock()
                .expect("answers")
                .iter()
                .filter(|a| a.phase >= phase)
                .map(|a| a.status)
                .collect();
            panic!("only {n} calls answered 2xx in phase {phase}; statuses seen: {statuses:?}");
        }
    }

    async fn stop(mut self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        while self.senders.join_next().await.is_some() {}
        std::mem::take(&mut *self.answers.lock().expect("answers"))
    }
}
