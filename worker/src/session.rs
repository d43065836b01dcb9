//! What both stages share: a broker session rebuilt whenever the connection is lost (on the
//! next node, in a cluster: each stage keeps its own `broker::Nodes`), a stop
//! signal every task of a worker can wait on, and the queue depths they report.

use std::future::Future;
use std::time::Duration;

use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer as Stream};
use shared::metrics::label;
use tokio::sync::watch;

use crate::metrics::Metrics;

const RECONNECT_DELAY: Duration = Duration::from_secs(1);

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

/// Ready messages of each queue into `callq_worker_queue_messages`. A passive declare returns
/// the count without touching the queue.
pub async fn sample_depths(channel: &Channel, queues: &[&str], metrics: &Metrics) {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    for queue in queues {
        if let Ok(q) = channel
            .queue_declare((*queue).into(), passive, FieldTable::default())
            .await
        {
            metrics
                .queue_messages
                .get_or_create(&label("queue", *queue))
                .set(i64::from(q.message_count()));
        }
    }
}
