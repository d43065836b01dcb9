//! Gateway and worker together: bodies posted with both running, then waiting until every
//! call is stored and the probes waited for are written.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::watch::{self, counter, Progress, WorkerMetrics};
use crate::fixture::Fixture;
use crate::load::{self, LoadResult, Target};
use crate::media_server::MediaServer;
use crate::processes::Service;
use crate::report::Outcomes;

/// Which probes a run waits for once every call is stored.
pub enum Until<'a> {
    /// Every call's: no row pending.
    AllProbed,
    /// Only the calls whose recording is on this host, this many of them.
    HostProbed(&'a MediaServer, usize),
}

pub struct Posted {
    pub load: LoadResult,
    /// The last row's `created_at`.
    pub stored_at: DateTime<Utc>,
    pub calls_per_batch: f64,
    pub probes: Outcomes,
    /// The worker's `callq_worker_open_circuits` at the end.
    pub open_circuits: f64,
}

/// Posts every body with both services running; returns the load's result, when the last
/// accepted call was stored, and what the worker did meanwhile.
pub async fn post(
    fixture: &Fixture,
    worker: SocketAddr,
    target: Arc<Target>,
    bodies: Vec<Bytes>,
    concurrency: usize,
    services: &[&Service],
    until: Until<'_>,
) -> anyhow::Result<Posted> {
    let metrics = WorkerMetrics::at(worker).await;
    let served_before = match until {
        Until::HostProbed(host, _) => host.probes(),
        Until::AllProbed => 0,
    };
    let sent = bodies.len();
    let load = load::run(target, Arc::new(bodies), concurrency).await?;
    // The last row can only follow the last accepted POST, so waiting from here loses nothing.
    let stored_at = watch::wait_for_rows(fixture, &metrics, load.accepted, services).await?;
    match until {
        Until::AllProbed => {
            let progress = Progress::Written(&metrics);
            watch::wait_for_probes(fixture, progress, load.accepted, None, services).await?;
        }
        Until::HostProbed(host, calls) => {
            // Calls the gateway refused may have been the host's: wait for no more than are
            // sure to be stored.
            let calls = calls.saturating_sub(sent - load.accepted);
            let progress = Progress::Served(host, served_before);
            watch::wait_for_probes(fixture, progress, calls, Some(&host.base), services).await?;
        }
    }
    let now = WorkerMetrics::at(worker).await;
    Ok(Posted {
        load,
        stored_at,
        calls_per_batch: metrics.calls_per_batch(&now),
        probes: metrics.outcomes(&now),
        open_circuits: counter(worker, "callq_worker_open_circuits").await,
    })
}
