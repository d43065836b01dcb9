//! CPU spent by a service, and by the whole machine, over a phase: whether a service was
//! CPU-bound or waiting, what a call costs it, and whether something else was busy too.

use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

/// `/proc` counts CPU time in USER_HZ ticks, 100 a second on every Linux platform we run.
const TICKS_PER_SEC: f64 = 100.0;

pub struct Snapshot {
    process_secs: f64,
    machine_busy_secs: f64,
    at: Instant,
}

#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// Cores the service kept busy on average (2.0 = both cores of a 2-core machine).
    pub process_cores: f64,
    pub process_ms_per_call: f64,
    /// Cores busy machine-wide: the service, the load generator, RabbitMQ, Postgres, and
    /// anything else running, which would make the figures lower than they should be.
    pub machine_busy_cores: f64,
}

pub fn snapshot(pid: u32) -> anyhow::Result<Snapshot> {
    Ok(Snapshot {
        process_secs: process_secs(pid)?,
        machine_busy_secs: machine_busy_secs()?,
        at: Instant::now(),
    })
}

pub fn usage(before: &Snapshot, after: &Snapshot, calls: usize) -> Usage {
    let wall = (after.at - before.at).as_secs_f64().max(f64::EPSILON);
    let process = after.process_secs - before.process_secs;
    Usage {
        process_cores: process / wall,
        process_ms_per_call: process * 1000.0 / calls.max(1) as f64,
        machine_busy_cores: (after.machine_busy_secs - before.machine_busy_secs) / wall,
    }
}

/// utime + stime of every thread of the process.
fn process_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name is in parentheses and may hold spaces: count fields after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let tick = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .with_context(|| format!("short /proc/{pid}/stat"))?
            .parse::<f64>()?)
    };
    // Fields 14 and 15 of stat(5); the first after ')' is field 3.
    Ok((tick(11)? + tick(12)?) / TICKS_PER_SEC)
}

/// Every tick of the `cpu` line of /proc/stat but idle and iowait.
fn machine_busy_secs() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .context("no cpu line in /proc/stat")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    Ok((total - idle) / TICKS_PER_SEC)
}
