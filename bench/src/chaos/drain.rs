//! After the load: waiting until the pipeline has nothing left to do. Done when no call
//! waits in the work, retry or dead queues and no row has arrived (calls or dead letters)
//! for a while; a worker holding deliveries writes them well within that while.

use std::time::{Duration, Instant};

use anyhow::Context;
use shared::broker::Topology;

use super::pipeline::Pipeline;
use crate::fixture::Fixture;

const POLL_EVERY: Duration = Duration::from_secs(1);
/// Rows unchanged this long, with the queues empty, mean the pipeline is done.
const QUIET: Duration = Duration::from_secs(10);

pub struct Drained {
    /// From the end of the load.
    pub took: Duration,
    /// False when the timeout came first: the counts are then of an unfinished pipeline.
    pub finished: bool,
    /// Messages in the parked queue: neither stored nor recorded as dead letters.
    pub parked: u32,
}

pub async fn wait(
    fixture: &Fixture,
    pipeline: &Pipeline,
    timeout: Duration,
) -> anyhow::Result<Drained> {
    let started = Instant::now();
    let topology = Topology::new(&fixture.broker);
    let mut last = (-1, Instant::now());
    loop {
        pipeline.check_alive()?;
        let (waiting, parked) = queued(fixture, &topology).await?;
        let rows = fixture
            .count("SELECT (SELECT count(*) FROM calls) + (SELECT count(*) FROM dead_letters)")
            .await?;
        if rows != last.0 {
            last = (rows, Instant::now());
        }
        let finished = waiting == 0 && last.1.elapsed() >= QUIET;
        if finished || started.elapsed() >= timeout {
            return Ok(Drained {
                took: started.elapsed(),
                finished,
                parked,
            });
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Ready messages in the work, retry and dead queues, and in the parked queue.
async fn queued(fixture: &Fixture, topology: &Topology) -> anyhow::Result<(u32, u32)> {
    let connection = shared::broker::connect(&fixture.broker, "chaos-drain").await?;
    let channel = connection.create_channel().await?;
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let (mut waiting, mut parked) = (0, 0);
    for queue in topology.queues() {
        let declared = channel
            .queue_declare(queue.into(), passive, Default::default())
            .await
            .with_context(|| format!("count the messages of {queue}"))?;
        if queue == topology.parked_queue {
            parked = declared.message_count();
        } else {
            waiting += declared.message_count();
        }
    }
    shared::broker::close(&connection, "").await;
    Ok((waiting, parked))
}
