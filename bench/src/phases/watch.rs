//! Watching a phase progress without loading what it measures: the services' own counters
//! (their `/metrics`) say when the work should be done, and one exact query confirms it. A
//! `count(*)` every poll would load the very Postgres being measured (a parallel scan of
//! tens of ms at 200k rows).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};

use crate::fixture::Fixture;
use crate::load;
use crate::media_server::MediaServer;
use crate::processes::Service;
use crate::report::Outcomes;

const POLL_EVERY: Duration = Duration::from_millis(100);
const EXACT_EVERY: Duration = Duration::from_secs(1);
/// Work that stops progressing for this long means the pipeline is stuck, not slow.
const STALL: Duration = Duration::from_secs(60);

/// A worker's `/metrics` and its counts when a phase started (all 0 for a worker started
/// for the phase).
pub struct WorkerMetrics {
    pub addr: SocketAddr,
    stored: f64,
    batches: f64,
    written: f64,
    probes_queued: f64,
    outcomes: Outcomes,
}

impl WorkerMetrics {
    /// For a worker just started, whose counts begin at 0.
    pub fn fresh(addr: SocketAddr) -> Self {
        Self {
            addr,
            stored: 0.0,
            batches: 0.0,
            written: 0.0,
            probes_queued: 0.0,
            outcomes: Outcomes::new(),
        }
    }

    /// For a running worker: its counts now.
    pub async fn at(addr: SocketAddr) -> Self {
        let text = metrics(addr).await;
        Self {
            addr,
            stored: value(&text, "callq_worker_calls_stored_total"),
            batches: value(&text, "callq_worker_batches_total"),
            written: value(&text, "callq_worker_probe_results_written_total"),
            probes_queued: value(&text, "callq_worker_probes_queued_total"),
            outcomes: outcomes(&text),
        }
    }

    /// Calls committed since the reading.
    async fn stored(&self) -> i64 {
        (counter(self.addr, "callq_worker_calls_stored_total").await - self.stored) as i64
    }

    /// Calls whose media columns a probe result changed since the reading.
    async fn written(&self) -> i64 {
        (counter(self.addr, "callq_worker_probe_results_written_total").await - self.written) as i64
    }

    /// From this reading to a later one: mean calls per transaction.
    pub fn calls_per_batch(&self, later: &Self) -> f64 {
        (later.stored - self.stored) / (later.batches - self.batches).max(1.0)
    }

    /// From this reading to a later one: probes queued by the calls stage.
    pub fn probes_queued(&self, later: &Self) -> u64 {
        (later.probes_queued - self.probes_queued) as u64
    }

    /// From this reading to a later one: probes settled, by outcome.
    pub fn outcomes(&self, later: &Self) -> Outcomes {
        later
            .outcomes
            .iter()
            .map(|(k, &v)| (k.clone(), v - self.outcomes.get(k).copied().unwrap_or(0)))
            .filter(|&(_, v)| v > 0)
            .collect()
    }
}

/// Waits until `expected` calls are stored and returns the last one's `created_at` (set
/// by its insert, just before the commit), so the poll's granularity is not in the figure.
/// Progress comes from the worker's count of committed calls.
pub async fn wait_for_rows(
    fixture: &Fixture,
    worker: &WorkerMetrics,
    expected: usize,
    services: &[&Service],
) -> anyhow::Result<DateTime<Utc>> {
    let expected = i64::try_from(expected)?;
    let mut watch = Watch::new();
    loop {
        let stored = worker.stored().await;
        // A redelivered call is counted twice but stored once: confirm, at most once a second.
        if stored >= expected && watch.may_ask() {
            if let (rows, Some(last_row)) = fixture.stored().await? {
                if rows >= expected {
                    return Ok(last_row);
                }
            }
        }
        if watch.stalled(stored, services)? {
            let (rows, _) = fixture.stored().await?;
            let dead = fixture.count("SELECT count(*) FROM dead_letters").await?;
            bail!(
                "stuck at {rows} of {expected} calls stored for {STALL:?} ({dead} dead letters); see the worker's log"
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// What tells, without asking Postgres, that the probes waited for may be done.
pub enum Progress<'a> {
    /// Probe results the worker wrote: when every row is waited for.
    Written(&'a WorkerMetrics),
    /// Requests one recording host received since the count given: when only its rows are
    /// waited for, beside hosts whose probes are not.
    Served(&'a MediaServer, u64),
}

impl Progress<'_> {
    async fn count(&self) -> i64 {
        match self {
            Self::Written(worker) => worker.written().await,
            Self::Served(host, before) => (host.probes() - before) as i64,
        }
    }
}

/// Waits until none of the rows whose recording is on `host` (every row when `None`) is
/// pending, once `progress` reaches `expected`, and returns their latest `media_checked_at`:
/// when the last of them was probed.
pub async fn wait_for_probes(
    fixture: &Fixture,
    progress: Progress<'_>,
    expected: usize,
    host: Option<&str>,
    services: &[&Service],
) -> anyhow::Result<DateTime<Utc>> {
    let expected = i64::try_from(expected)?;
    let mut watch = Watch::new();
    loop {
        let done = progress.count().await;
        if done >= expected && watch.may_ask() {
            if let (0, Some(last)) = pending(fixture, host).await? {
                return Ok(last);
            }
        }
        if watch.stalled(done, services)? {
            let (pending, _) = pending(fixture, host).await?;
            bail!("probing stuck for {STALL:?} with {pending} rows pending; see the worker's log");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Rows still pending, and the latest `media_checked_at`, of the rows on `host` (a base URL).
async fn pending(
    fixture: &Fixture,
    host: Option<&str>,
) -> anyhow::Result<(i64, Option<DateTime<Utc>>)> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE media_status = 'pending'), max(media_checked_at)
         FROM calls WHERE $1::text IS NULL OR starts_with(media_url, $1)",
    )
    .bind(host.map(|base| format!("{base}/")))
    .fetch_one(&fixture.pool)
    .await
    .context("count the pending probes")
}

/// The state a wait keeps: when it last asked Postgres, and when its count last moved.
struct Watch {
    asked: Option<Instant>,
    progress: (i64, Instant),
}

impl Watch {
    fn new() -> Self {
        Self {
            asked: None,
            progress: (-1, Instant::now()),
        }
    }

    /// At most once a second.
    fn may_ask(&mut self) -> bool {
        let now = Instant::now();
        let may = self.asked.is_none_or(|t| now - t >= EXACT_EVERY);
        if may {
            self.asked = Some(now);
        }
        may
    }

    /// Fails if a service died; true once `count` has not moved for [`STALL`].
    fn stalled(&mut self, count: i64, services: &[&Service]) -> anyhow::Result<bool> {
        for service in services {
            service.check_alive()?;
        }
        let now = Instant::now();
        if count != self.progress.0 {
            self.progress = (count, now);
        }
        Ok(now - self.progress.1 > STALL)
    }
}

/// The gateway's cumulative counts of published calls and messages.
#[derive(Default)]
pub struct Published {
    calls: f64,
    messages: f64,
}

impl Published {
    pub async fn at(addr: SocketAddr) -> Self {
        let text = metrics(addr).await;
        Self {
            calls: value(&text, "callq_gateway_calls_published_total"),
            messages: value(&text, "callq_gateway_messages_published_total"),
        }
    }

    /// Mean calls per message published since `earlier`.
    pub fn calls_per_message(&self, earlier: &Self) -> f64 {
        (self.calls - earlier.calls) / (self.messages - earlier.messages).max(1.0)
    }
}

/// A counter or gauge from a service's `/metrics`; 0 until it answers (it may still be
/// starting).
pub async fn counter(addr: SocketAddr, name: &str) -> f64 {
    value(&metrics(addr).await, name)
}

/// A service's `/metrics` text; empty until it answers.
async fn metrics(addr: SocketAddr) -> String {
    match load::get(addr, "/metrics").await {
        Ok((200, text)) => String::from_utf8_lossy(&text).into_owned(),
        _ => String::new(),
    }
}

fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// `callq_worker_probes_total{outcome="..."} N` lines.
fn outcomes(text: &str) -> Outcomes {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("callq_worker_probes_total{outcome=\"")?;
            let (outcome, count) = rest.split_once("\"} ")?;
            Some((outcome.to_owned(), count.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counters_and_outcomes_from_openmetrics_text() {
        let text = "# TYPE callq_worker_probes counter\n\
                    callq_worker_probes_total{outcome=\"reachable\"} 1990\n\
                    callq_worker_probes_total{outcome=\"deferred\"} 10\n\
                    callq_worker_calls_stored_total 2000\n\
                    callq_worker_open_circuits 1\n# EOF\n";
        assert_eq!(value(text, "callq_worker_calls_stored_total"), 2000.0);
        assert_eq!(value(text, "callq_worker_open_circuits"), 1.0);
        assert_eq!(value(text, "callq_worker_batches_total"), 0.0);
        let outcomes = outcomes(text);
        assert_eq!(outcomes.get("reachable"), Some(&1990));
        assert_eq!(outcomes.get("deferred"), Some(&10));
        assert_eq!(outcomes.len(), 2);
    }
}
