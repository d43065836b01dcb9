//! What both stages share: a broker session rebuilt whenever the connection is lost (on the
//! next node, in a cluster: each stage keeps its own `broker::Nodes`), a stop
//! signal every task of a worker can wait on, and the queue depths they report.

use std::future::Future;
use std::time::Duration;

use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer as Stream};
use tokio::sync::watch;

use crate::metrics::Metrics;

const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// How long a session whose connection was lost waits for the work its tasks hold (a batch
/// being written, results being settled) before dropping it. Nothing can be acked over the
/// lost connection: the broker redelivers all of it, and storing is idempotent, so finishing
/// only saves redoing it. And an ack or a request racing the loss can wait for ever (lapin
/// leaves a frame queued after its I/O loop ended unanswered), which held a worker off the
/// cluster after a node stopped.
const LOST_GRACE: Duration = Duration::from_secs(10);
/// A queue-depth sample, bounded for the same reason: it runs in a session's loop.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Set once, when the worker is asked to stop.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
}

pub enum SessionEnd {
    Stopped,
    Lost(String),
}

/// Waits for `held` (a session's tasks finishing what they hold): fully when the worker is
/// stopping, at most [`LOST_GRACE`] when the connection was lost. False when it gave up; the
/// caller then ends those tasks.
pub async fn finish_held(end: &SessionEnd, held: impl Future<Output = ()>) -> bool {
    match end {
        SessionEnd::Stopped => {
            held.await;
            true
        }
        SessionEnd::Lost(_) => {
            let finished = tokio::time::timeout(LOST_GRACE, held).await.is_ok();
            if !finished {
                tracing::warn!(
                    "work held over the lost connection did not finish in time; dropping it \
                     (the broker redelivers it)"
                );
            }
            finished
        }
    }
}

/// Runs `session` again after each lost connection, until the worker stops.
pub async fn reconnecting<F, Fut>(stage: &'static str, stop: Stop, mut session: F)
where
    F: FnMut(Stop) -> Fut,
    Fut: Future<Output = SessionEnd>,
{
    loop {
        match session(stop.clone()).await {
            SessionEnd::Stopped => return,
            SessionEnd::Lost(why) => {
                tracing::warn!(stage, %why, "broker session lost; reconnecting");
                tokio::select! {
                    _ = stop.clone().wait() => return,
                    _ = tokio::time::sleep(RECONNECT_DELAY) => {}
                }
            }
        }
    }
}

/// A channel of its own consuming `queue` with manual acks and at most `prefetch` unacked.
pub async fn consume(
    connection: &Connection,
    queue: &str,
    prefetch: u16,
) -> Result<(Channel, Stream), lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let stream = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((channel, stream))
}

/// Ready messages and consumers of each queue into `callq_worker_queue_messages` and
/// `callq_worker_queue_consumers`. A passive declare returns the counts without touching the
/// queue.
pub async fn sample_depths(channel: &Channel, queues: &[&str], metrics: &Metrics) {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    for queue in queues {
        let declare = channel.queue_declare((*queue).into(), passive, FieldTable::default());
        if let Ok(Ok(q)) = tokio::time::timeout(SAMPLE_TIMEOUT, declare).await {
            metrics.sampled(queue, q.message_count(), q.consumer_count());
        }
    }
}
