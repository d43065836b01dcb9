//! Building a worker from settings; `main.rs` and the tests both go through here.

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use shared::broker::{ProbeTopology, Publisher};
use shared::config::{Settings, Stage};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::auto_replay::AutoReplay;
use crate::calls::handler::{Handler, Inspector};
use crate::calls::lane::Batching;
use crate::calls::settle::Settler;
use crate::calls::CallsStage;
use crate::media::MediaProber;
use crate::metrics::Metrics;
use crate::operators::Operators;
use crate::probes::results::Results;
use crate::probes::{ProbeStage, StorageFirst};
use crate::retry::Retrier;
use crate::session::Stop;

pub struct Worker {
    calls: Option<CallsStage>,
    probes: Option<ProbeStage>,
    auto_replay: Option<AutoReplay>,
    listener: TcpListener,
    metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
#[error("worker.stages is empty: name \"calls\", \"probes\" or both")]
struct NoStages;

impl Worker {
    /// Binds the metrics address first (port 0 works), so tests know the port.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        Self::build_inspected(settings, None).await
    }

    /// A worker whose handler shows each decoded message to `inspector` first.
    pub async fn build_inspected(
        settings: &Settings,
        inspector: Option<Inspector>,
    ) -> anyhow::Result<Self> {
        let stages = &settings.worker.stages;
        if stages.is_empty() {
            return Err(NoStages.into());
        }
        let pool = shared::store::pool(&settings.database)?;
        let publisher = Publisher::new(settings.broker.clone(), "worker-publisher");
        let metrics = Metrics::new(
            publisher.clone(),
            pool.clone(),
            settings.database.max_connections,
        );
        let probe_topology = ProbeTopology::new(&settings.broker.queue_prefix, &settings.media);
        let operators = Operators::new(
            pool.clone(),
            Duration::from_millis(settings.worker.operator_cache_ttl_ms),
        );
        let calls_stage = stages.contains(&Stage::Calls);
        let backlog = Arc::new(AtomicBool::new(false));
        let listener_pool = shared::store::session_pool(&settings.database, &pool)?;
        let auto_replay =
            (calls_stage && settings.worker.auto_replay_interval_ms > 0).then(|| AutoReplay {
                pool: pool.clone(),
                listener_pool,
                publisher: publisher.clone(),
                metrics: metrics.clone(),
                operators: operators.clone(),
                interval: settings.worker.auto_replay_interval(),
                batch: settings.worker.replay_batch.max(1),
            });
        let calls = calls_stage.then(|| CallsStage {
            broker: settings.broker.clone(),
            probe_topology: probe_topology.clone(),
            batching: Batching {
                lanes: settings.worker.lanes,
                prefetch: settings.worker.prefetch,
                size: settings.worker.batch_size.max(1),
                wait: Duration::from_millis(settings.worker.batch_wait_ms),
            },
            settler: Arc::new(Settler {
                handler: Handler {
                    pool: pool.clone(),
                    probe_media: settings.media.probe,
                    operators,
                    metrics: metrics.clone(),
                    inspector,
                    max_field_definitions: settings.limits.max_field_definitions,
                },
                retrier: Retrier::new(publisher.clone()),
                publisher: publisher.clone(),
                probe_queue: probe_topology.work_queue.clone(),
                metrics: metrics.clone(),
                delivery_limit: settings.broker.delivery_limit,
            }),
            backlog: backlog.clone(),
        });
        let probes = if stages.contains(&Stage::Probes) {
            let media = &settings.media;
            let max_started = u32::try_from(media.max_started.clamp(1, Semaphore::MAX_PERMITS))
                .unwrap_or(u32::MAX);
            Some(ProbeStage {
                broker: settings.broker.clone(),
                prefetch: media.prefetch.max(1),
                max_deferrals: media.max_deferrals,
                prober: MediaProber::new(media)?,
                started: Arc::new(Semaphore::new(max_started as usize)),
                max_started,
                results: Results {
                    pool,
                    publisher,
                    retry_queues: probe_topology.retry_queues.clone(),
                    defer_queue: probe_topology.defer_queue.name.clone(),
                    batch: media.result_batch.max(1),
                    wait: media.result_wait(),
                    metrics: metrics.clone(),
                },
                topology: probe_topology,
                metrics: metrics.clone(),
                storage: (calls_stage && media.yield_to_storage_ms > 0).then(|| StorageFirst {
                    backlog,
                    yield_every: Duration::from_millis(media.yield_to_storage_ms),
                }),
            })
        } else {
            None
        };
        Ok(Self {
            calls,
            probes,
            auto_replay,
            listener: TcpListener::bind(settings.worker.listen).await?,
            metrics,
        })
    }

    /// Port of /metrics and /healthz.
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// Runs the stages until `shutdown`, then lets each finish and settle what it holds.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = Stop::new();
        let http = axum::serve(self.listener, crate::http::router(self.metrics))
            .with_graceful_shutdown(stopped.clone().wait());
        let mut running = tokio::task::JoinSet::new();
        running.spawn(async move {
            if let Err(e) = http.await {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
        if let Some(auto) = self.auto_replay {
            running.spawn(auto.run_until_stopped(stopped.clone().wait()));
        }
        if let Some(calls) = self.calls {
            running.spawn(calls.run_until_stopped(stopped.clone()));
        }
        if let Some(probes) = self.probes {
            running.spawn(probes.run_until_stopped(stopped.clone()));
        }
        shutdown.await;
        let _ = stop.send(true);
        while running.join_next().await.is_some() {}
    }
}
