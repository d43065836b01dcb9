//! What a run found: the figures of each size beside the raw limit that bounds them, as a
//! table for people and one summary line (`table.rs`), and as JSON for comparing runs.

mod table;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::bodies::Shape;
use crate::cpu::{GroupUsage, Usage};
use crate::latency::Summary;
use crate::machine::Machine;
use crate::raw::Method;

pub use table::{summary, table};

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rate {
    pub count: usize,
    pub seconds: f64,
    pub per_sec: f64,
}

impl Rate {
    pub fn new(count: usize, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64();
        Self {
            count,
            seconds,
            per_sec: if seconds > 0.0 {
                count as f64 / seconds
            } else {
                0.0
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub started_at: String,
    pub machine: Machine,
    pub concurrency: usize,
    /// `APP_*` variables the bench passed through to the gateway and worker unchanged.
    pub app_overrides: BTreeMap<String, String>,
    pub sizes: Vec<SizeReport>,
    pub summary: String,
}

#[derive(Debug, Serialize)]
pub struct SizeReport {
    pub calls: usize,
    pub load_average_before: Option<f64>,
    pub bodies: Shape,
    pub raw: Raw,
    pub gateway: Gateway,
    pub worker: Worker,
    pub end_to_end: EndToEnd,
    pub bad_hosts: BadHosts,
    pub mixed: Mixed,
    pub storage_alone: StorageAlone,
    pub probe_stage_alone: ProbeStageAlone,
    pub rss: Rss,
}

#[derive(Debug, Serialize)]
pub struct Raw {
    pub method: Method,
    pub publish: Rate,
    pub consume: Rate,
    pub upsert: Rate,
    /// HEADs answered by the recording host, from as many loops as a worker may probe one
    /// host with: what bounds the probe stage.
    pub head: Rate,
}

/// Probes the worker settled over a phase, by outcome (`callq_worker_probes_total`):
/// reachable, unreachable, refused, circuit_open, deferred, undecodable.
pub type Outcomes = BTreeMap<String, u64>;

#[derive(Debug, Serialize)]
pub struct Gateway {
    /// 2xx answers over the time from the first request to the last answer.
    pub accepted: Rate,
    /// Mean calls per confirmed message: how much the gateway grouped.
    pub calls_per_message: f64,
    pub errors: BTreeMap<String, usize>,
    pub latency: Summary,
    pub ratio_of_raw_publish: f64,
    pub cpu: Usage,
    pub cpu_by_group: Vec<GroupUsage>,
}

/// A worker with both stages draining the gateway phase's backlog: storing it, and probing
/// it beside.
#[derive(Debug, Serialize)]
pub struct Worker {
    /// From the worker's start until the last row's `created_at`.
    pub drained: Rate,
    /// From the worker's start until the backlog's last probe (`max(media_checked_at)` once
    /// no row is pending).
    pub probed: Rate,
    pub probed_ratio_of_raw_head: f64,
    /// Mean calls written per transaction.
    pub calls_per_batch: f64,
    pub media_probes_served: u64,
    /// Rows whose `media_status` is 'reachable'.
    pub media_reachable_rows: i64,
    pub probes: Outcomes,
    pub dead_letters: i64,
    pub ratio_of_raw_upsert: f64,
    /// Up to the last row stored: the probes still under way then are left out.
    pub cpu: Usage,
    pub cpu_by_group: Vec<GroupUsage>,
}

/// A backlog posted anew with no worker running, drained by a worker with only the calls
/// stage (`worker.stages = ["calls"]`): storing with no probing beside it. Its probe work is
/// left queued for [`ProbeStageAlone`].
#[derive(Debug, Serialize)]
pub struct StorageAlone {
    pub drained: Rate,
    pub calls_per_batch: f64,
    /// Probes the calls stage queued (`callq_worker_probes_queued_total`).
    pub probes_queued: u64,
    /// 0: nothing probes in this phase.
    pub media_probes_served: u64,
    pub ratio_of_raw_upsert: f64,
    pub cpu: Usage,
    pub cpu_by_group: Vec<GroupUsage>,
}

/// A worker with only the probe stage (`worker.stages = ["probes"]`) taking the probe work
/// the storage-only drain left, until no row is pending.
#[derive(Debug, Serialize)]
pub struct ProbeStageAlone {
    /// From the worker's start until `max(media_checked_at)`.
    pub probed: Rate,
    pub ratio_of_raw_head: f64,
    pub media_probes_served: u64,
    pub media_reachable_rows: i64,
    pub probes: Outcomes,
    pub cpu: Usage,
    pub cpu_by_group: Vec<GroupUsage>,
}

#[derive(Debug, Serialize)]
pub struct EndToEnd {
    /// Accepted calls over the time from the first POST to the last row counted.
    pub sustained: Rate,
    /// Mean calls written per transaction.
    pub calls_per_batch: f64,
    /// Mean calls per confirmed message: grouping depends on how fast calls arrive.
    pub calls_per_message: f64,
    /// The slowest raw limit (publish, consume or upsert) and its rate.
    pub bound_by: &'static str,
    pub bound_per_sec: f64,
    pub ratio_of_bound: f64,
    pub errors: BTreeMap<String, usize>,
    pub post_latency: Summary,
    /// `created_at - received_at` of the rows: gateway receipt to row insert.
    pub post_to_row: Delays,
    /// `media_checked_at - received_at`: gateway receipt to the recording probed, read once
    /// no row is pending.
    pub post_to_probed: Delays,
    /// `media_checked_at - created_at`: how far probing runs behind storing.
    pub probed_after_stored: Delays,
    pub probes: Outcomes,
    pub dead_letters: i64,
    /// Until no row is pending: every call's probe is in the cost.
    pub gateway_cpu: Usage,
    pub worker_cpu: Usage,
    pub cpu_by_group: Vec<GroupUsage>,
}

/// Calls and chats posted together to one gateway and stored by one worker: a quarter of
/// the connections post chats (a chat for every four calls), the rest calls.
#[derive(Debug, Serialize)]
pub struct Mixed {
    /// Accepted over the time from the first POST to the last call or chat stored.
    pub calls: Rate,
    pub chats: Rate,
    pub chat_parts_stored: i64,
    pub call_errors: BTreeMap<String, usize>,
    pub chat_errors: BTreeMap<String, usize>,
    pub call_latency: Summary,
    pub chat_latency: Summary,
    pub dead_letters: i64,
}

/// End to end again with fresh `uid`s and a share of the recordings on bad hosts: one that
/// accepts connections and never answers, one that answers late; the rest on the fast host.
/// Read once the fast host's rows are probed; the bad hosts' probes are not waited for.
#[derive(Debug, Serialize)]
pub struct BadHosts {
    pub hosts: Vec<HostShare>,
    /// Accepted calls over the time from the first POST to the last row stored.
    pub sustained: Rate,
    /// Of [`EndToEnd::sustained`], the all-fast run's.
    pub sustained_ratio_of_all_fast: f64,
    pub errors: BTreeMap<String, usize>,
    pub post_to_row: Delays,
    pub post_to_row_p99_ratio_of_all_fast: f64,
    /// The fast host's rows only.
    pub fast_post_to_probed: Delays,
    pub probes: Outcomes,
    /// `callq_worker_open_circuits` once the fast host's rows were probed.
    pub open_circuits: f64,
    pub dead_letters: i64,
    pub cpu_by_group: Vec<GroupUsage>,
}

#[derive(Debug, Serialize)]
pub struct HostShare {
    /// "fast", "slow" or "silent".
    pub host: &'static str,
    pub base: String,
    /// When it answers each request; `None`: never.
    pub answers_after_ms: Option<u64>,
    pub calls: usize,
}

/// Percentiles of a delay between two of a row's timestamps.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Delays {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Rss {
    /// `VmHWM` just before each process was stopped: its peak over every phase.
    pub gateway_peak_mb: f64,
    pub worker_peak_mb: f64,
    /// `VmRSS` sampled every second during the end-to-end phase.
    pub gateway_end_to_end: Series,
    pub worker_end_to_end: Series,
}

#[derive(Debug, Serialize)]
pub struct Series {
    pub first_mb: f64,
    pub last_mb: f64,
    pub max_mb: f64,
    pub samples: usize,
}

impl Series {
    pub fn of_kb(kb: &[u64]) -> Self {
        let mb = |v: Option<&u64>| v.map_or(0.0, |&kb| kb_to_mb(kb));
        Self {
            first_mb: mb(kb.first()),
            last_mb: mb(kb.last()),
            max_mb: mb(kb.iter().max()),
            samples: kb.len(),
        }
    }
}

pub fn kb_to_mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

pub fn ratio(figure: f64, bound: f64) -> f64 {
    if bound > 0.0 {
        figure / bound
    } else {
        0.0
    }
}

/// The slowest of the raw limits on the storage path, which bounds the pipeline's sustained
/// rate (probing is off that path).
pub fn slowest(raw: &Raw) -> (&'static str, f64) {
    [
        ("publish", raw.publish.per_sec),
        ("consume", raw.consume.per_sec),
        ("upsert", raw.upsert.per_sec),
    ]
    .into_iter()
    .min_by(|a, b| a.1.total_cmp(&b.1))
    .expect("three limits")
}
