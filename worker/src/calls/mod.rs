//! The calls stage: takes calls off the work queue in batches, stores them (one transaction a
//! batch), queues their media probes, and only then acks. Media are never probed here, so a
//! recording host, however slow or dead, cannot hold up storing anyone's calls.
//!
//! The work queue is consumed by a few lanes (`lane.rs`), each a channel of its own taking
//! one batch at a time; `settle.rs` turns each message's outcome into broker actions;
//! `dead_queue.rs` copies what the broker itself set aside into the `dead_letters` table, and
//! hands back what it cannot for the broker to park.

pub mod dead_queue;
pub mod handler;
pub mod lane;
mod letters;
pub mod registration;
pub mod settle;
pub mod store;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::BasicCancelOptions;
use shared::broker::{self, ProbeTopology, Topology};
use shared::config::BrokerSettings;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::session::{self, SessionEnd, Stop};
use lane::{Batching, Lane};
use settle::Settler;

/// Dead-queue messages are rare and each is one insert: a few at a time is plenty.
const DEAD_QUEUE_PREFETCH: u16 = 4;
const DEPTH_SAMPLE_EVERY: Duration = Duration::from_secs(5);

pub struct CallsStage {
    pub broker: BrokerSettings,
    pub probe_topology: ProbeTopology,
    pub batching: Batching,
    pub settler: Arc<Settler>,
    /// Whether a backlog is waiting, for a probe stage in the same process to yield to.
    pub backlog: Arc<AtomicBool>,
}

impl CallsStage {
    pub async fn run_until_stopped(self, stop: Stop) {
        let topology = Topology::new(&self.broker);
        let nodes = broker::Nodes::new(&self.broker);
        session::reconnecting("calls", stop, |stop| self.session(&nodes, &topology, stop)).await;
    }

    async fn session(&self, nodes: &broker::Nodes, topology: &Topology, stop: Stop) -> SessionEnd {
        let connection = match nodes.connect("worker").await {
            Ok(c) => c,
            Err(e) => return SessionEnd::Lost(e.to_string()),
        };
        let batching = self.batching;
        let setup = async {
            let channel = connection.create_channel().await?;
            topology.declare(&channel).await?;
            // Probe work is published right after each commit: its queue must exist.
            self.probe_topology.declare(&channel).await?;
            let mut lanes = Vec::with_capacity(batching.lanes.max(1));
            for _ in 0..batching.lanes.max(1) {
                lanes.push(
                    session::consume(&connection, &topology.work_queue, batching.prefetch).await?,
                );
            }
            let dead =
                session::consume(&connection, &topology.dead_queue, DEAD_QUEUE_PREFETCH).await?;
            Ok::<_, lapin::Error>((channel, lanes, dead))
        };
        // Bounded like a publisher's setup: a node that takes the connection and then stops
        // answering would hold the stage here.
        let setup = tokio::time::timeout(self.broker.connect_timeout(), setup);
        let (side_channel, lanes, (dead_channel, mut dead)) = match setup.await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return SessionEnd::Lost(e.to_string()),
            Err(_) => {
                broker::close(&connection, "setup timed out").await;
                return SessionEnd::Lost("timed out declaring the queues and consumers".into());
            }
        };
        tracing::info!(
            queue = %topology.work_queue,
            lanes = lanes.len(),
            batch = batching.size,
            prefetch = batching.prefetch,
            "consuming calls"
        );
        self.settler.metrics.session_up("calls", true);

        let (stop_lanes, lanes_stopped) = watch::channel(false);
        let mut running = JoinSet::new();
        for (channel, stream) in lanes {
            let lane = Lane {
                settler: self.settler.clone(),
                batching,
                channel,
                stream,
                stopped: lanes_stopped.clone(),
                backlog: self.backlog.clone(),
            };
            running.spawn(lane.run());
        }
        let queues = topology.queues();
        let mut depths = tokio::time::interval(DEPTH_SAMPLE_EVERY);
        let mut in_flight = JoinSet::new();
        let stopping = stop.wait();
        tokio::pin!(stopping);
        let end = loop {
            tokio::select! {
                _ = &mut stopping => break SessionEnd::Stopped,
                Some(lane) = running.join_next() => {
                    break SessionEnd::Lost(lane.unwrap_or_else(|e| format!("a lane failed: {e}")));
                }
                next = dead.next() => match next {
                    Some(Ok(delivery)) => {
                        self.settler.metrics.delivered(dead.queue().as_str(), &delivery.properties);
                        in_flight.spawn(self.settler.clone().dead(delivery, lanes_stopped.clone()));
                    }
                    Some(Err(e)) => break SessionEnd::Lost(e.to_string()),
                    None => break SessionEnd::Lost("the broker cancelled the consumer".into()),
                },
                _ = depths.tick() => {
                    session::sample_depths(&side_channel, &queues, &self.settler.metrics).await;
                }
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        };
        self.settler.metrics.session_up("calls", false);
        // Batches being written are finished (and settled if the channel still lives);
        // whatever is not acked goes back to the queue when the connection closes.
        let _ = stop_lanes.send(true);
        if dead_channel.status().connected() {
            let cancel = dead_channel.basic_cancel(dead.tag(), BasicCancelOptions::default());
            broker::while_stopping("dead-queue consumer cancel", cancel).await;
        }
        let held = async {
            while running.join_next().await.is_some() {}
            while in_flight.join_next().await.is_some() {}
        };
        // Given up on, they end when their sets are dropped.
        session::finish_held(&end, held).await;
        broker::close(&connection, "worker stopping").await;
        end
    }
}
