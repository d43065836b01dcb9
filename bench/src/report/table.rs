//! The report for people: a table per size, a figure a line beside the raw limit that bounds
//! it, and one summary line for the whole run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Delays, Outcomes, SizeReport};
use crate::cpu::{GroupUsage, Usage};

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
    let t = &mut Table(&mut out);
    t.row(
        "what",
        "figure".into(),
        "bounded by (raw)".into(),
        "ratio".into(),
    );
    let r = &s.raw;
    t.figure(
        "raw: publish, confirmed (quorum)",
        per_sec(r.publish.per_sec),
    );
    t.figure("raw: consume, acked", per_sec(r.consume.per_sec));
    t.figure("raw: upsert into calls, rows", per_sec(r.upsert.per_sec));
    t.figure("raw: HEAD, one host (probes)", per_sec(r.head.per_sec));
    let (upsert, head) = (
        format!("upsert {}", per_sec(r.upsert.per_sec)),
        format!("HEAD {}", per_sec(r.head.per_sec)),
    );

    let g = &s.gateway;
    t.row(
        "gateway: accepted",
        per_sec(g.accepted.per_sec),
        format!("publish {}", per_sec(r.publish.per_sec)),
        ratio(g.ratio_of_raw_publish),
    );
    t.row(
        "gateway: latency p50 / p99 / p99.9",
        format!(
            "{:.1} / {:.1} / {:.1} ms",
            g.latency.p50_ms, g.latency.p99_ms, g.latency.p999_ms
        ),
        format!("errors: {}", errors(&g.errors)),
        String::new(),
    );
    t.figure(
        "gateway: calls per message (grouping)",
        format!("{:.1}", g.calls_per_message),
    );
    t.cpu("gateway: CPU cores / ms per call", &g.cpu);
    t.by_group("gateway", &g.cpu_by_group);

    let w = &s.worker;
    t.row(
        "worker: drain of the backlog (stored)",
        per_sec(w.drained.per_sec),
        upsert.clone(),
        ratio(w.ratio_of_raw_upsert),
    );
    t.row(
        "worker: the same backlog probed by",
        format!("{} ({:.1} s)", per_sec(w.probed.per_sec), w.probed.seconds),
        head.clone(),
        ratio(w.probed_ratio_of_raw_head),
    );
    t.figure(
        "worker: calls per transaction (batching)",
        format!("{:.1}", w.calls_per_batch),
    );
    t.row(
        "worker: probes served / reachable rows",
        format!("{} / {}", w.media_probes_served, w.media_reachable_rows),
        format!("dead letters: {}", w.dead_letters),
        String::new(),
    );
    t.outcomes("worker", &w.probes);
    t.cpu("worker: CPU cores / ms per call (stored)", &w.cpu);
    t.by_group("worker", &w.cpu_by_group);

    let e = &s.end_to_end;
    t.row(
        "end to end: sustained (stored)",
        per_sec(e.sustained.per_sec),
        format!("{} {}", e.bound_by, per_sec(e.bound_per_sec)),
        ratio(e.ratio_of_bound),
    );
    t.figure(
        "end to end: calls per transaction",
        format!("{:.1}", e.calls_per_batch),
    );
    t.figure(
        "end to end: calls per message (grouping)",
        format!("{:.1}", e.calls_per_message),
    );
    t.row(
        "end to end: POST to row p50 / p99",
        delays(&e.post_to_row),
        format!("dead letters: {}", e.dead_letters),
        String::new(),
    );
    t.figure(
        "end to end: POST to probed p50 / p99",
        delays(&e.post_to_probed),
    );
    t.figure(
        "end to end: probed after stored p50 / p99",
        delays(&e.probed_after_stored),
    );
    t.row(
        "end to end: POST latency p50 / p99 / p99.9",
        format!(
            "{:.1} / {:.1} / {:.1} ms",
            e.post_latency.p50_ms, e.post_latency.p99_ms, e.post_latency.p999_ms
        ),
        format!("errors: {}", errors(&e.errors)),
        String::new(),
    );
    t.outcomes("end to end", &e.probes);
    for (name, usage) in [("gateway", &e.gateway_cpu), ("worker", &e.worker_cpu)] {
        t.cpu(
            &format!("end to end: {name} CPU cores / ms per call"),
            usage,
        );
    }
    t.by_group("end to end", &e.cpu_by_group);

    let m = &s.mixed;
    t.figure(
        "mixed: calls + chats stored",
        format!(
            "{} + {} ({} parts)",
            per_sec(m.calls.per_sec),
            per_sec(m.chats.per_sec),
            m.chat_parts_stored
        ),
    );
    t.row(
        "mixed: POST latency p50 / p99, calls | chats",
        format!(
            "{:.1} / {:.1} | {:.1} / {:.1} ms",
            m.call_latency.p50_ms,
            m.call_latency.p99_ms,
            m.chat_latency.p50_ms,
            m.chat_latency.p99_ms
        ),
        format!(
            "errors: {} | {}; dead letters: {}",
            errors(&m.call_errors),
            errors(&m.chat_errors),
            m.dead_letters
        ),
        String::new(),
    );

    let h = &s.bad_hosts;
    let hosts: Vec<String> = h
        .hosts
        .iter()
        .map(|host| {
            let answers = host.answers_after_ms.map_or("never answers".into(), |ms| {
                format!("answers after {ms} ms")
            });
            format!("{} {} ({answers})", host.host, host.calls)
        })
        .collect();
    let _ = writeln!(t.0, "  bad hosts, calls by host: {}", hosts.join(", "));
    t.row(
        "bad hosts: sustained (stored)",
        per_sec(h.sustained.per_sec),
        format!("all fast {}", per_sec(e.sustained.per_sec)),
        ratio(h.sustained_ratio_of_all_fast),
    );
    t.row(
        "bad hosts: POST to row p50 / p99",
        delays(&h.post_to_row),
        format!("all fast p99 {:.0} ms", e.post_to_row.p99_ms),
        ratio(h.post_to_row_p99_ratio_of_all_fast),
    );
    t.row(
        "bad hosts: fast host's POST to probed",
        delays(&h.fast_post_to_probed),
        format!("all fast {}", delays(&e.post_to_probed)),
        String::new(),
    );
    t.row(
        "bad hosts: open circuits at the end",
        format!("{:.0}", h.open_circuits),
        format!(
            "dead letters: {}, errors: {}",
            h.dead_letters,
            errors(&h.errors)
        ),
        String::new(),
    );
    t.outcomes("bad hosts", &h.probes);
    t.by_group("bad hosts", &h.cpu_by_group);

    let a = &s.storage_alone;
    t.row(
        "storage without the probe stage: drain",
        per_sec(a.drained.per_sec),
        upsert,
        ratio(a.ratio_of_raw_upsert),
    );
    t.row(
        "storage without the probe stage: CPU / call",
        cpu(&a.cpu),
        format!(
            "probes queued {}, served {}",
            a.probes_queued, a.media_probes_served
        ),
        String::new(),
    );
    t.by_group("storage without the probe stage", &a.cpu_by_group);

    let p = &s.probe_stage_alone;
    t.row(
        "probe stage alone: probed",
        format!("{} ({:.1} s)", per_sec(p.probed.per_sec), p.probed.seconds),
        head,
        ratio(p.ratio_of_raw_head),
    );
    t.row(
        "probe stage alone: served / reachable rows",
        format!("{} / {}", p.media_probes_served, p.media_reachable_rows),
        String::new(),
        String::new(),
    );
    t.cpu("probe stage alone: CPU cores / ms per call", &p.cpu);
    t.outcomes("probe stage alone", &p.probes);
    t.by_group("probe stage alone", &p.cpu_by_group);

    let m = &s.rss;
    t.figure(
        "peak RSS: gateway / worker",
        format!("{:.0} / {:.0} MB", m.gateway_peak_mb, m.worker_peak_mb),
    );
    for (name, series) in [
        ("gateway", &m.gateway_end_to_end),
        ("worker", &m.worker_end_to_end),
    ] {
        t.row(
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

struct Table<'a>(&'a mut String);

impl Table<'_> {
    fn row(&mut self, what: &str, figure: String, bound: String, ratio: String) {
        let _ = writeln!(self.0, "  {what:<44} {figure:>24}   {bound:<28} {ratio:>5}");
    }

    fn figure(&mut self, what: &str, figure: String) {
        self.row(what, figure, String::new(), String::new());
    }

    fn cpu(&mut self, what: &str, usage: &Usage) {
        self.row(what, cpu(usage), busy(usage), String::new());
    }

    /// The machine's CPU per call, group by group, on one line: too many figures for columns.
    fn by_group(&mut self, phase: &str, groups: &[GroupUsage]) {
        let shares: Vec<String> = groups
            .iter()
            .map(|g| format!("{} {:.3}", g.group, g.ms_per_call))
            .collect();
        let busy: f64 = groups.iter().map(|g| g.cores).sum();
        let _ = writeln!(
            self.0,
            "  {phase}: machine CPU ms per call: {} ({busy:.2} cores busy)",
            shares.join(", ")
        );
    }

    /// The worker's probes by outcome, on one line like [`Self::by_group`].
    fn outcomes(&mut self, phase: &str, outcomes: &Outcomes) {
        let counts: Vec<String> = outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let counts = if counts.is_empty() {
            "none".into()
        } else {
            counts.join(", ")
        };
        let _ = writeln!(self.0, "  {phase}: probes by outcome: {counts}");
    }
}

/// One line for every size, printed last.
pub fn summary(sizes: &[SizeReport]) -> String {
    let parts: Vec<String> = sizes
        .iter()
        .map(|s| {
            let (w, e, h) = (&s.worker, &s.end_to_end, &s.bad_hosts);
            let (a, p) = (&s.storage_alone, &s.probe_stage_alone);
            format!(
                "{} calls: gateway {:.0}/s ({:.2} of publish), p99 {:.1} ms; worker {:.0}/s ({:.2} of upsert), probed by {:.0}/s; \
                 storage alone {:.0}/s ({:.2}), probe stage alone {:.0}/s ({:.2} of HEAD {:.0}/s); \
                 e2e {:.0}/s ({:.2} of {}), POST to row p99 {:.0} ms, to probed p99 {:.0} ms; \
                 bad hosts {:.0}/s ({:.2} of all fast), POST to row p99 {:.0} ms ({:.2}), fast probed p99 {:.0} ms; \
                 rss gw {:.0} MB wk {:.0} MB",
                s.calls,
                s.gateway.accepted.per_sec,
                s.gateway.ratio_of_raw_publish,
                s.gateway.latency.p99_ms,
                w.drained.per_sec,
                w.ratio_of_raw_upsert,
                w.probed.per_sec,
                a.drained.per_sec,
                a.ratio_of_raw_upsert,
                p.probed.per_sec,
                p.ratio_of_raw_head,
                s.raw.head.per_sec,
                e.sustained.per_sec,
                e.ratio_of_bound,
                e.bound_by,
                e.post_to_row.p99_ms,
                e.post_to_probed.p99_ms,
                h.sustained.per_sec,
                h.sustained_ratio_of_all_fast,
                h.post_to_row.p99_ms,
                h.post_to_row_p99_ratio_of_all_fast,
                h.fast_post_to_probed.p99_ms,
                s.rss.gateway_peak_mb,
                s.rss.worker_peak_mb,
            )
        })
        .collect();
    format!("bench: {}", parts.join(" | "))
}

fn delays(d: &Delays) -> String {
    format!("{:.0} / {:.0} ms", d.p50_ms, d.p99_ms)
}

fn ratio(r: f64) -> String {
    format!("{r:.2}")
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
