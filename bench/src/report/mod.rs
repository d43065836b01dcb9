//! What a run found: the figures of each size beside the raw limit that bounds them, as a
//! table for people, as JSON for comparing runs, and as one summary line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::bodies::Shape;
use crate::cpu::{GroupUsage, Usage};
use crate::latency::Summary;
use crate::machine::Machine;
use crate::raw::Method;

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
    pub worker_without_probes: Unprobed,
    pub end_to_end: EndToEnd,
    pub rss: Rss,
}

#[derive(Debug, Serialize)]
pub struct Raw {
    pub method: Method,
    pub publish: Rate,
    pub consume: Rate,
    pub upsert: Rate,
}

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

#[derive(Debug, Serialize)]
pub struct Worker {
    /// The gateway phase's backlog, from the worker's start until the last row counted.
    pub drained: Rate,
    /// Mean calls written per transaction.
    pub calls_per_batch: f64,
    pub media_probes_served: u64,
    pub media_reachable_rows: i64,
    pub dead_letters: i64,
    pub ratio_of_raw_upsert: f64,
    pub cpu: Usage,
    pub cpu_by_group: Vec<GroupUsage>,
}

/// The worker's drain again with `media.probe = false`, after the end-to-end phase: what
/// the probes cost, and what the database side of the worker reaches without them.
#[derive(Debug, Serialize)]
pub struct Unprobed {
    /// A backlog of the size's calls, posted anew with no worker running.
    pub drained: Rate,
    pub calls_per_batch: f64,
    /// 0 unless probing failed to turn off.
    pub media_probes_served: u64,
    pub ratio_of_raw_upsert: f64,
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
    pub post_to_row: PostToRow,
    pub dead_letters: i64,
    pub gateway_cpu: Usage,
    pub worker_cpu: Usage,
    pub cpu_by_group: Vec<GroupUsage>,
}

#[derive(Debug, Serialize)]
pub struct PostToRow {
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

/// The slowest of the raw limits, which bounds the pipeline as a whole.
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

pub fn table(s: &SizeReport) -> String {
    let mut out = String::new();
    let b = &s.bodies;
    let _ = writeln!(
        out,
        "\n== {} calls (bodies {}-{} B, mean {} B, {} with transcription; load average before: {}) ==",
        s.calls,
        b.min_bytes,
        b.max_bytes,
        b.mean_bytes,
        b.with_transcription,
        s.load_average_before.map_or("?".into(), |l| format!("{l:.2}")),
    );
    row(
        &mut out,
        "what",
        "figure".into(),
        "bounded by (raw)".into(),
        "ratio".into(),
    );
    let r = &s.raw;
    row(
        &mut out,
        "raw: publish, confirmed (quorum)",
        per_sec(r.publish.per_sec),
        String::new(),
        String::new(),
    );
    row(
        &mut out,
        "raw: consume, acked",
        per_sec(r.consume.per_sec),
        String::new(),
        String::new(),
    );
    row(
        &mut out,
        "raw: upsert into calls, rows",
        per_sec(r.upsert.per_sec),
        String::new(),
        String::new(),
    );
    let g = &s.gateway;
    row(
        &mut out,
        "gateway: accepted",
        per_sec(g.accepted.per_sec),
        format!("publish {}", per_sec(r.publish.per_sec)),
        format!("{:.2}", g.ratio_of_raw_publish),
    );
    row(
        &mut out,
        "gateway: latency p50 / p99 / p99.9",
        format!(
            "{:.1} / {:.1} / {:.1} ms",
            g.latency.p50_ms, g.latency.p99_ms, g.latency.p999_ms
        ),
        format!("errors: {}", errors(&g.errors)),
        String::new(),
    );
    row(
        &mut out,
        "gateway: calls per message (grouping)",
        format!("{:.1}", g.calls_per_message),
        String::new(),
        String::new(),
    );
    row(
        &mut out,
        "gateway: CPU cores / ms per call",
        cpu(&g.cpu),
        busy(&g.cpu),
        String::new(),
    );
    by_group(&mut out, "gateway", &g.cpu_by_group);
    let w = &s.worker;
    row(
        &mut out,
        "worker: drain of the backlog",
        per_sec(w.drained.per_sec),
        format!("upsert {}", per_sec(r.upsert.per_sec)),
        format!("{:.2}", w.ratio_of_raw_upsert),
    );
    row(
        &mut out,
        "worker: calls per transaction (batching)",
        format!("{:.1}", w.calls_per_batch),
        String::new(),
        String::new(),
    );
    row(
        &mut out,
        "worker: probes served / reachable rows",
        format!("{} / {}", w.media_probes_served, w.media_reachable_rows),
        format!("dead letters: {}", w.dead_letters),
        String::new(),
    );
    row(
        &mut out,
        "worker: CPU cores / ms per call",
        cpu(&w.cpu),
        busy(&w.cpu),
        String::new(),
    );
    by_group(&mut out, "worker", &w.cpu_by_group);
    let u = &s.worker_without_probes;
    row(
        &mut out,
        "worker without media probes: drain",
        per_sec(u.drained.per_sec),
        format!("upsert {}", per_sec(r.upsert.per_sec)),
        format!("{:.2}", u.ratio_of_raw_upsert),
    );
    row(
        &mut out,
        "worker without media probes: CPU / call",
        cpu(&u.cpu),
        format!("probes served: {}", u.media_probes_served),
        String::new(),
    );
    by_group(&mut out, "worker without probes", &u.cpu_by_group);
    let e = &s.end_to_end;
    row(
        &mut out,
        "end to end: sustained",
        per_sec(e.sustained.per_sec),
        format!("{} {}", e.bound_by, per_sec(e.bound_per_sec)),
        format!("{:.2}", e.ratio_of_bound),
    );
    row(
        &mut out,
        "end to end: calls per transaction",
        format!("{:.1}", e.calls_per_batch),
        String::new(),
        String::new(),
    );
    row(
        &mut out,
        "end to end: calls per message (grouping)",
        format!("{:.1}", e.calls_per_message),
        String::new(),
        String::new(),
    );
    row(
        &mut out,
        "end to end: POST to row p50 / p99",
        format!(
            "{:.0} / {:.0} ms",
            e.post_to_row.p50_ms, e.post_to_row.p99_ms
        ),
        format!("dead letters: {}", e.dead_letters),
        String::new(),
    );
    row(
        &mut out,
        "end to end: POST latency p50 / p99 / p99.9",
        format!(
            "{:.1} / {:.1} / {:.1} ms",
            e.post_latency.p50_ms, e.post_latency.p99_ms, e.post_latency.p999_ms
        ),
        format!("errors: {}", errors(&e.errors)),
        String::new(),
    );
    for (name, usage) in [("gateway", &e.gateway_cpu), ("worker", &e.worker_cpu)] {
        row(
            &mut out,
            &format!("end to end: {name} CPU cores / ms per call"),
            cpu(usage),
            busy(usage),
            String::new(),
        );
    }
    by_group(&mut out, "end to end", &e.cpu_by_group);
    let m = &s.rss;
    row(
        &mut out,
        "peak RSS: gateway / worker",
        format!("{:.0} / {:.0} MB", m.gateway_peak_mb, m.worker_peak_mb),
        String::new(),
        String::new(),
    );
    for (name, series) in [
        ("gateway", &m.gateway_end_to_end),
        ("worker", &m.worker_end_to_end),
    ] {
        row(
            &mut out,
            &format!("RSS during e2e, {name}: first / last / max"),
            format!(
                "{:.0} / {:.0} / {:.0} MB",
                series.first_mb, series.last_mb, series.max_mb
            ),
            format!("{} samples, 1 s apart", series.samples),
            String::new(),
        );
    }
    out
}

fn row(out: &mut String, what: &str, figure: String, bound: String, ratio: String) {
    let _ = writeln!(out, "  {what:<44} {figure:>24}   {bound:<28} {ratio:>5}");
}

/// The machine's CPU per call, group by group, on one line: too many figures for columns.
fn by_group(out: &mut String, phase: &str, groups: &[GroupUsage]) {
    let shares: Vec<String> = groups
        .iter()
        .map(|g| format!("{} {:.3}", g.group, g.ms_per_call))
        .collect();
    let busy: f64 = groups.iter().map(|g| g.cores).sum();
    let _ = writeln!(
        out,
        "  {phase}: machine CPU ms per call: {} ({busy:.2} cores busy)",
        shares.join(", ")
    );
}

/// One line for every size, printed last.
pub fn summary(sizes: &[SizeReport]) -> String {
    let parts: Vec<String> = sizes
        .iter()
        .map(|s| {
            format!(
                "{} calls: gateway {:.0}/s ({:.2} of publish), p99 {:.1} ms; worker {:.0}/s ({:.2} of upsert), without probes {:.0}/s ({:.2}); \
                 e2e {:.0}/s ({:.2} of {}), POST to row p99 {:.0} ms; rss gw {:.0} MB wk {:.0} MB",
                s.calls,
                s.gateway.accepted.per_sec,
                s.gateway.ratio_of_raw_publish,
                s.gateway.latency.p99_ms,
                s.worker.drained.per_sec,
                s.worker.ratio_of_raw_upsert,
                s.worker_without_probes.drained.per_sec,
                s.worker_without_probes.ratio_of_raw_upsert,
                s.end_to_end.sustained.per_sec,
                s.end_to_end.ratio_of_bound,
                s.end_to_end.bound_by,
                s.end_to_end.post_to_row.p99_ms,
                s.rss.gateway_peak_mb,
                s.rss.worker_peak_mb,
            )
        })
        .collect();
    format!("bench: {}", parts.join(" | "))
}

fn cpu(usage: &Usage) -> String {
    format!(
        "{:.2} / {:.3} ms",
        usage.process_cores, usage.process_ms_per_call
    )
}

fn busy(usage: &Usage) -> String {
    format!("machine busy: {:.2} cores", usage.machine_busy_cores)
}

fn per_sec(v: f64) -> String {
    format!("{v:.0}/s")
}

fn errors(errors: &BTreeMap<String, usize>) -> String {
    if errors.is_empty() {
        return "none".into();
    }
    errors
        .iter()
        .map(|(k, v)| format!("{k}x{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
