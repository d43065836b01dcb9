//! The probe stage: takes probe work off `<prefix>.probes`, probes each media URL (bounded
//! per host and in all, behind each host's circuit breaker), and settles the results in
//! batches (`results.rs`). A delivery holds the probes of one stored batch and is acked once
//! all of them are settled (`ticket.rs`).
//!
//! No host can stall the others: each probe ends by its deadline, and a host that already
//! has a full line has its excess put off through the defer queue rather than held, so the
//! unacked deliveries (the prefetch) never fill up with one host's waiting probes.

pub mod results;
pub mod store;
pub mod ticket;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::BasicCancelOptions;
use shared::broker::{self, ProbeTopology};
use shared::config::BrokerSettings;
use shared::message;
use shared::metrics::label;
use shared::probe_work::ProbeWork;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;

use crate::media::{MediaCheck, MediaProber, Probed};
use crate::metrics::Metrics;
use crate::session::{self, SessionEnd, Stop};
use results::{Finished, Results};
use ticket::Ticket;

const DEPTH_SAMPLE_EVERY: Duration = Duration::from_secs(5);

pub struct ProbeStage {
    pub broker: BrokerSettings,
    pub topology: ProbeTopology,
    /// Probe-work deliveries held unacked.
    pub prefetch: u16,
    /// Deferrals after which a probe waits in its host's line instead.
    pub max_deferrals: u32,
    pub prober: MediaProber,
    /// Probes started and not yet finished, at most (`media.max_started`): the work behind
    /// them waits in the consumer's prefetch, not as tasks.
    pub started: Arc<Semaphore>,
    pub max_started: u32,
    pub results: Results,
    pub metrics: Metrics,
    /// The calls stage of the same process, when there is one: while it has a backlog, a
    /// probe-work message is started at most every `yield_every`, so that on shared cores
    /// storing goes first and probing catches up after.
    pub storage: Option<StorageFirst>,
}

pub struct StorageFirst {
    pub backlog: Arc<AtomicBool>,
    pub yield_every: Duration,
}

impl ProbeStage {
    pub async fn run_until_stopped(self, stop: Stop) {
        let nodes = broker::Nodes::new(&self.broker);
        session::reconnecting("probes", stop, |stop| self.session(&nodes, stop)).await;
    }

    async fn session(&self, nodes: &broker::Nodes, stop: Stop) -> SessionEnd {
        let connection = match nodes.connect("worker-probes").await {
            Ok(c) => c,
            Err(e) => return SessionEnd::Lost(e.to_string()),
        };
        let setup = async {
            let channel = connection.create_channel().await?;
            self.topology.declare(&channel).await?;
            let consumer =
                session::consume(&connection, &self.topology.work_queue, self.prefetch).await?;
            Ok::<_, lapin::Error>((channel, consumer))
        };
        // Bounded like a publisher's setup: a node that takes the connection and then stops
        // answering would hold the stage here.
        let setup = tokio::time::timeout(self.broker.connect_timeout(), setup);
        let (side_channel, (channel, mut stream)) = match setup.await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return SessionEnd::Lost(e.to_string()),
            Err(_) => {
                broker::close(&connection, "setup timed out").await;
                return SessionEnd::Lost("timed out declaring the queues and consumer".into());
            }
        };
        tracing::info!(queue = %self.topology.work_queue, prefetch = self.prefetch, "consuming probe work");
        self.metrics.session_up("probes", true);

        let (finished, to_settle) = mpsc::channel(self.results.batch.max(1) * 4);
        let mut settling = tokio::spawn(self.results.clone().run(to_settle, stop.clone()));
        let queues = self.topology.queues();
        let mut depths = tokio::time::interval(DEPTH_SAMPLE_EVERY);
        let stopping = stop.wait();
        tokio::pin!(stopping);
        let mut last_start = Instant::now();
        let end = loop {
            tokio::select! {
                _ = &mut stopping => break SessionEnd::Stopped,
                next = stream.next() => match next {
                    Some(Ok(delivery)) => {
                        self.metrics.delivered(stream.queue().as_str(), &delivery.properties);
                        if let Some(storage) = &self.storage {
                            if storage.backlog.load(Ordering::Relaxed) {
                                tokio::time::sleep_until(last_start + storage.yield_every).await;
                            }
                        }
                        last_start = Instant::now();
                        tokio::select! {
                            _ = &mut stopping => break SessionEnd::Stopped,
                            () = self.start(delivery, &finished) => {}
                        }
                    }
                    Some(Err(e)) => break SessionEnd::Lost(e.to_string()),
                    None => break SessionEnd::Lost("the broker cancelled the consumer".into()),
                },
                _ = depths.tick() => {
                    session::sample_depths(&side_channel, &queues, &self.metrics).await;
                    let open = i64::try_from(self.prober.open_circuits()).unwrap_or(i64::MAX);
                    self.metrics.open_circuits.set(open);
                }
            }
        };
        self.metrics.session_up("probes", false);
        if channel.status().connected() {
            let cancel = channel.basic_cancel(stream.tag(), BasicCancelOptions::default());
            broker::while_stopping("probe consumer cancel", cancel).await;
        }
        // Probes under way end by their deadline; their results are settled (and acked, if
        // the channel still lives) before the connection closes. The rest goes back.
        let held = async {
            // Every permit back: every probe task has ended.
            drop(self.started.acquire_many(self.max_started).await);
            drop(finished);
            let _ = (&mut settling).await;
        };
        if !session::finish_held(&end, held).await {
            settling.abort();
        }
        broker::close(&connection, "worker stopping").await;
        end
    }

    async fn start(&self, delivery: Delivery, finished: &mpsc::Sender<Finished>) {
        let encoding = delivery.properties.content_encoding().as_ref();
        let work = message::decompress(encoding.map(|e| e.as_str()), &delivery.data)
            .map_err(|e| e.to_string())
            .and_then(|body| ProbeWork::from_bytes(&body).map_err(|e| e.to_string()));
        let work = match work {
            Ok(work) if !work.probes.is_empty() => work,
            Ok(_) => return Ticket::new(delivery.acker, 0).ack().await,
            Err(error) => {
                // Only workers write probe work: this is a bug or another version's message.
                // Its calls stay 'pending' and `admin media reprobe` queues them again.
                tracing::error!(%error, "undecodable probe work; dropped");
                self.metrics
                    .probes
                    .get_or_create(&label("outcome", "undecodable"))
                    .inc();
                return Ticket::new(delivery.acker, 0).ack().await;
            }
        };
        let ticket = Arc::new(Ticket::new(delivery.acker, work.probes.len()));
        for probe in work.probes {
            // Never closed: the semaphore lives as long as the stage.
            let Ok(started) = self.started.clone().acquire_owned().await else {
                return;
            };
            let may_defer = probe.deferrals < self.max_deferrals;
            let (prober, finished, ticket) =
                (self.prober.clone(), finished.clone(), ticket.clone());
            let span = tracing::info_span!(
                "probe",
                integration = %probe.integration_id,
                uid = %probe.uid,
                attempts = probe.attempts,
            );
            shared::trace_context::continue_from(&span, probe.traceparent.as_slice());
            // Not in a JoinSet: it would keep every ended task until joined.
            tokio::spawn(
                async move {
                    let _started = started;
                    let outcome = AssertUnwindSafe(prober.probe(&probe.media_url, may_defer))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| {
                            tracing::error!("a media probe panicked");
                            Probed::Found {
                                status: MediaCheck::crashed(&probe.media_url),
                                network: None,
                            }
                        });
                    let _ = finished
                        .send(Finished {
                            probe,
                            outcome,
                            ticket,
                        })
                        .await;
                }
                .instrument(span),
            );
        }
    }
}
