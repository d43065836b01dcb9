//! The chaos run's one table: what the callers were told, what became of the calls, how long
//! each fault took to pass; then the line that sums it up.

use std::fmt::Write as _;
use std::time::Duration;

use super::tally::Tally;

/// What the run was, for the table's title.
pub struct Setup {
    pub gateways: usize,
    pub connections: usize,
    pub per_sec: f64,
    pub load: Duration,
    pub drained_in: Duration,
    pub drained: bool,
    pub parked: u32,
}

pub fn render(setup: &Setup, t: &Tally) -> String {
    let mut out = String::new();
    let pace = if setup.per_sec > 0.0 {
        format!("{} calls/s", setup.per_sec)
    } else {
        "as fast as answered".to_owned()
    };
    let _ = writeln!(
        out,
        "\n== chaos: {} gateways, 1 worker, {} connections at {pace}, {:.0} s of load, drained in {:.0} s{} ==",
        setup.gateways,
        setup.connections,
        setup.load.as_secs_f64(),
        setup.drained_in.as_secs_f64(),
        if setup.drained { "" } else { " (NOT drained: timed out)" },
    );
    let line = |out: &mut String, what: &str, n: String| {
        let _ = writeln!(out, "  {what:<50} {n:>12}");
    };
    line(&mut out, "calls sent", t.sent.to_string());
    line(&mut out, "answered 2xx (accepted)", t.accepted.to_string());
    for (status, n) in &t.refused {
        line(&mut out, &format!("answered {status}"), n.to_string());
    }
    line(
        &mut out,
        "sent again after a connection closed under them",
        t.resent.to_string(),
    );
    line(&mut out, "accepted and stored", t.stored.to_string());
    line(
        &mut out,
        "accepted and dead-lettered",
        t.dead_lettered.to_string(),
    );
    line(
        &mut out,
        "lost (accepted, neither stored nor dead-lettered)",
        t.lost.to_string(),
    );
    line(
        &mut out,
        "duplicates (rows beyond one per uid)",
        t.duplicates.to_string(),
    );
    line(
        &mut out,
        "both stored and dead-lettered",
        t.stored_and_dead.to_string(),
    );
    line(
        &mut out,
        "stored although not answered 2xx",
        t.stored_unaccepted.to_string(),
    );
    line(
        &mut out,
        "messages parked (dead queue, unrecorded)",
        setup.parked.to_string(),
    );
    if !t.lost_uids.is_empty() {
        let _ = writeln!(out, "  lost, for example: {}", t.lost_uids.join(", "));
    }
    let _ = writeln!(
        out,
        "  {:<28} {:>7} {:>8} {:>8} {:>10} {:>10} {:>10}  note",
        "fault (seconds from its start)",
        "at",
        "back",
        "non-2xx",
        "2xx again",
        "storing",
        "caught up",
    );
    for r in &t.recoveries {
        let f = &r.fault;
        let _ = writeln!(
            out,
            "  {:<28} {:>7} {:>8} {:>8} {:>10} {:>10} {:>10}  {}",
            f.name,
            secs(Some(f.began)),
            secs(Some(f.ended.saturating_sub(f.began))),
            r.refused,
            secs(r.refused_until),
            secs(r.storing_again),
            secs(r.caught_up),
            f.note,
        );
    }
    let _ = writeln!(
        out,
        "  (back: the service up again; 2xx again: the last non-2xx answer, - if none; storing: the\n   first row stored after it was back; caught up: the last call accepted during it stored)"
    );
    let _ = write!(
        out,
        "accepted {}, stored {}, lost {}, duplicates {}",
        t.accepted, t.stored, t.lost, t.duplicates
    );
    out
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".to_owned(), |d| format!("{:.1}", d.as_secs_f64()))
}
