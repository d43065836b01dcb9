//! A worker started on work that waits for it: a backlog of calls to store, or the probe
//! work a storage-only worker left, timed from its start.

use std::net::SocketAddr;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::between;
use super::watch::{self, Progress, WorkerMetrics};
use crate::cpu;
use crate::fixture::Fixture;
use crate::processes::Service;
use crate::report::Rate;

/// A worker started on a backlog of calls, timed until it has stored all of it.
pub struct Drain {
    pub worker: Service,
    pub metrics: WorkerMetrics,
    /// When the worker was started.
    pub started: DateTime<Utc>,
    pub rate: Rate,
    pub calls_per_batch: f64,
    /// From before the start (its start-up is in its cost) to the last row stored.
    pub cpu: cpu::Phase,
}

impl Drain {
    pub async fn run(
        fixture: &Fixture,
        env: &[(String, String)],
        log: &Path,
        worker_port: u16,
        backlog: usize,
        gateway: &Service,
    ) -> anyhow::Result<Self> {
        let s = Started::worker(env, log, worker_port)?;
        let drained_at =
            watch::wait_for_rows(fixture, &s.metrics, backlog, &[gateway, &s.worker]).await?;
        let cpu = cpu::Phase::new(s.before, cpu::snapshot()?, backlog);
        let now = WorkerMetrics::at(s.metrics.addr).await;
        Ok(Self {
            rate: Rate::new(backlog, between(s.at, drained_at)),
            calls_per_batch: s.metrics.calls_per_batch(&now),
            started: s.at,
            cpu,
            metrics: s.metrics,
            worker: s.worker,
        })
    }

    /// Waits until no row is pending; the backlog's probes, from the worker's start to the
    /// last one.
    pub async fn probed(&self, fixture: &Fixture, gateway: &Service) -> anyhow::Result<Rate> {
        let services = [gateway, &self.worker];
        let progress = Progress::Written(&self.metrics);
        let last =
            watch::wait_for_probes(fixture, progress, self.rate.count, None, &services).await?;
        Ok(Rate::new(self.rate.count, between(self.started, last)))
    }
}

/// A worker with only the probe stage started on `probes` probes waiting in their queue,
/// timed until no row is pending.
pub struct ProbeRun {
    pub worker: Service,
    pub metrics: WorkerMetrics,
    pub rate: Rate,
    /// From before the start to the last probe result found written.
    pub cpu: cpu::Phase,
}

impl ProbeRun {
    pub async fn run(
        fixture: &Fixture,
        env: &[(String, String)],
        log: &Path,
        worker_port: u16,
        probes: usize,
        gateway: &Service,
    ) -> anyhow::Result<Self> {
        let s = Started::worker(env, log, worker_port)?;
        let progress = Progress::Written(&s.metrics);
        let last =
            watch::wait_for_probes(fixture, progress, probes, None, &[gateway, &s.worker]).await?;
        let cpu = cpu::Phase::new(s.before, cpu::snapshot()?, probes);
        Ok(Self {
            rate: Rate::new(probes, between(s.at, last)),
            cpu,
            metrics: s.metrics,
            worker: s.worker,
        })
    }
}

/// A worker just started on work waiting for it, with what its timing needs.
struct Started {
    at: DateTime<Utc>,
    /// Before the start, so that the worker's own start-up is in its cost.
    before: cpu::Snapshot,
    worker: Service,
    metrics: WorkerMetrics,
}

impl Started {
    fn worker(env: &[(String, String)], log: &Path, port: u16) -> anyhow::Result<Self> {
        let at = Utc::now();
        let before = cpu::snapshot()?;
        Ok(Self {
            at,
            before,
            worker: Service::start("worker", env, log)?,
            metrics: WorkerMetrics::fresh(SocketAddr::from(([127, 0, 0, 1], port))),
        })
    }
}
