//! Settling finished probes, a batch at a time: their results written back in one statement,
//! the probes that must be tried again handed to their delay queues (confirmed, one message
//! per queue), and only then their deliveries acked. What cannot be written or published
//! yet is tried again, holding the deliveries (which stops new work arriving) until it can
//! be, or until the worker stops and the broker takes them back.

use std::collections::hash_map::{Entry, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use shared::broker::{Publisher, RetryQueue};
use shared::metrics::label;
use shared::probe_work::{Probe, ProbeWork};
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::store::{self, Finding};
use super::ticket::Ticket;
use crate::failure;
use crate::media::{MediaCheck, MediaStatus, Probed, CIRCUIT_OPEN};
use crate::metrics::Metrics;
use crate::session::Stop;

const FIRST_PAUSE: Duration = Duration::from_millis(500);
const LONGEST_PAUSE: Duration = Duration::from_secs(15);

/// A probe done (or put off), on its way to being settled.
pub struct Finished {
    pub probe: Probe,
    pub outcome: Probed,
    pub ticket: Arc<Ticket>,
}

#[derive(Clone)]
pub struct Results {
    pub pool: PgPool,
    pub publisher: Publisher,
    pub retry_queues: Vec<RetryQueue>,
    pub defer_queue: String,
    pub batch: usize,
    pub wait: Duration,
    pub metrics: Metrics,
}

impl Results {
    /// Ends when every sender is gone and what they sent is settled, or when the worker
    /// stops while something cannot be settled.
    pub async fn run(self, mut finished: mpsc::Receiver<Finished>, stop: Stop) {
        while let Some(first) = finished.recv().await {
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + self.wait;
            while batch.len() < self.batch.max(1) {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    next = finished.recv() => match next {
                        Some(f) => batch.push(f),
                        None => break,
                    },
                }
            }
            if !self.settle(batch, &stop).await {
                return;
            }
        }
    }

    /// False when the worker stopped before the batch could be settled.
    async fn settle(&self, batch: Vec<Finished>, stop: &Stop) -> bool {
        let now = Utc::now();
        let mut findings: Vec<Finding> = Vec::with_capacity(batch.len());
        // A call probed twice in one batch (work redelivered, a reprobe) is written once.
        let mut written: HashMap<(Uuid, &str, &str), usize> = HashMap::new();
        let mut later: HashMap<&str, Vec<Probe>> = HashMap::new();
        for f in &batch {
            let probe = &f.probe;
            let Probed::Found { status, network } = &f.outcome else {
                self.count("deferred");
                later
                    .entry(self.defer_queue.as_str())
                    .or_default()
                    .push(Probe {
                        deferrals: probe.deferrals + 1,
                        ..probe.clone()
                    });
                continue;
            };
            self.count(outcome_label(status));
            if let Some(network) = network {
                self.metrics.probe_seconds.observe(network.as_secs_f64());
            }
            let attempts = probe.attempts + 1;
            let retry = status
                .retriable
                .then(|| self.retry_queues.get(probe.attempts as usize))
                .flatten();
            if let Some(step) = retry {
                later.entry(step.name.as_str()).or_default().push(Probe {
                    attempts,
                    deferrals: 0,
                    ..probe.clone()
                });
            }
            let finding = Finding {
                integration_id: probe.integration_id,
                uid: &probe.uid,
                media_url: &probe.media_url,
                status,
                attempts,
                next_probe_at: retry.map(|step| now + step.delay),
            };
            match written.entry((probe.integration_id, &probe.uid, &probe.media_url)) {
                Entry::Occupied(kept) => {
                    let kept = &mut findings[*kept.get()];
                    if kept.status.checked_at <= status.checked_at {
                        *kept = finding;
                    }
                }
                Entry::Vacant(slot) => {
                    slot.insert(findings.len());
                    findings.push(finding);
                }
            }
        }
        if !findings.is_empty() && !self.write(&findings, stop).await {
            return false;
        }
        let written_at = Utc::now();
        for f in batch
            .iter()
            .filter(|f| matches!(f.outcome, Probed::Found { .. }))
        {
            let lag = (written_at - f.probe.stored_at)
                .to_std()
                .unwrap_or_default();
            self.metrics.probe_lag_seconds.observe(lag.as_secs_f64());
        }
        for (queue, probes) in later {
            let retries = probes.iter().filter(|p| p.deferrals == 0).count() as u64;
            if !self.hand_on(queue, probes, stop).await {
                return false;
            }
            self.metrics.probe_retries.inc_by(retries);
        }
        for f in batch {
            f.ticket.settle_one().await;
        }
        true
    }

    async fn write(&self, findings: &[Finding<'_>], stop: &Stop) -> bool {
        let mut pause = FIRST_PAUSE;
        loop {
            match store::write(&self.pool, findings).await {
                Ok(changed) => {
                    self.metrics.probe_results_written.inc_by(changed);
                    return true;
                }
                Err(e) if failure::transient_class(&e).is_some() => {
                    tracing::warn!(error = %e, results = findings.len(), "cannot write probe results yet; trying again");
                }
                Err(e) => {
                    // Nothing about a probe's result is the database's to refuse: a bug.
                    // Dropped, not retried for ever; the calls keep their earlier status.
                    tracing::error!(error = %e, results = findings.len(), "the database refused probe results");
                    return true;
                }
            }
            if !self.pause(&mut pause, stop).await {
                return false;
            }
        }
    }

    async fn hand_on(&self, queue: &str, probes: Vec<Probe>, stop: &Stop) -> bool {
        let body = ProbeWork::new(probes).to_bytes();
        let mut pause = FIRST_PAUSE;
        loop {
            match self.publisher.publish_probe_work(queue, &body).await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!(error = %e, queue, "cannot hand probes on yet; trying again");
                }
            }
            if !self.pause(&mut pause, stop).await {
                return false;
            }
        }
    }

    /// Waits `pause` (doubling it for next time), unless the worker stops first.
    async fn pause(&self, pause: &mut Duration, stop: &Stop) -> bool {
        let wait = *pause;
        *pause = (*pause * 2).min(LONGEST_PAUSE);
        tokio::select! {
            _ = stop.clone().wait() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }

    fn count(&self, outcome: &'static str) {
        self.metrics
            .probes
            .get_or_create(&label("outcome", outcome))
            .inc();
    }
}

fn outcome_label(check: &MediaCheck) -> &'static str {
    match check.state {
        MediaStatus::Unreachable if check.error.as_deref() == Some(CIRCUIT_OPEN) => "circuit_open",
        state => state.as_str(),
    }
}
