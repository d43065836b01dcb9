//! CPU spent over a phase, machine-wide: by each service, which tells a CPU-bound service
//! from a waiting one, and by group of processes, which shows what a call costs the whole
//! machine (the broker, the database and the load generator included) and whether
//! something else was busy too.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

/// `/proc` counts CPU time in USER_HZ ticks, 100 a second on every Linux platform we run.
const TICKS_PER_SEC: f64 = 100.0;

/// The Erlang VM and the helpers it starts; the broker's cost is all of them.
const RABBITMQ_COMMS: [&str; 4] = ["beam.smp", "erl_child_setup", "epmd", "inet_gethost"];

pub struct Snapshot {
    /// Keyed by pid and start time, so that a pid reused within a phase is a new process.
    processes: HashMap<(u32, u64), Process>,
    machine_busy_secs: f64,
    at: Instant,
}

struct Process {
    comm: String,
    /// utime + stime of every thread.
    secs: f64,
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

/// One group's share of the machine over a phase; the groups add up to its busy cores.
#[derive(Debug, Clone, Serialize)]
pub struct GroupUsage {
    pub group: &'static str,
    pub cores: f64,
    pub ms_per_call: f64,
}

#[derive(Clone, Copy)]
enum Group {
    Gateway,
    Worker,
    /// By name, so whoever the client: another project's load on the shared broker or
    /// database lands here too.
    Rabbitmq,
    Postgres,
    LoadGenerator,
    /// The machine's busy time no other group accounts for: other processes, kernel
    /// threads, interrupts, and processes that ended within the phase.
    Other,
}

impl Group {
    const ALL: [Self; 6] = [
        Self::Gateway,
        Self::Worker,
        Self::Rabbitmq,
        Self::Postgres,
        Self::LoadGenerator,
        Self::Other,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Worker => "worker",
            Self::Rabbitmq => "rabbitmq",
            Self::Postgres => "postgres",
            Self::LoadGenerator => "load generator",
            Self::Other => "other",
        }
    }
}

/// The services' pids: by name they could not be told from another gateway or worker
/// running on the same machine.
#[derive(Clone, Copy)]
pub struct Services {
    pub gateway: u32,
    /// None before the worker is started.
    pub worker: Option<u32>,
}

impl Services {
    fn group(self, pid: u32, comm: &str) -> Group {
        if pid == self.gateway {
            Group::Gateway
        } else if Some(pid) == self.worker {
            Group::Worker
        } else if pid == std::process::id() {
            // The bench is the load generator and the media server too.
            Group::LoadGenerator
        } else if RABBITMQ_COMMS.contains(&comm) {
            Group::Rabbitmq
        } else if comm == "postgres" {
            Group::Postgres
        } else {
            Group::Other
        }
    }
}

pub fn snapshot() -> anyhow::Result<Snapshot> {
    let mut processes = HashMap::new();
    for entry in std::fs::read_dir("/proc").context("list /proc")? {
        let Some(pid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // A process may end between the listing and the read: it is simply not seen.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (started, process) = parse_stat(&stat).with_context(|| format!("/proc/{pid}/stat"))?;
        processes.insert((pid, started), process);
    }
    Ok(Snapshot {
        processes,
        machine_busy_secs: machine_busy_secs()?,
        at: Instant::now(),
    })
}

/// The snapshots around a phase and the calls it handled.
pub struct Phase {
    before: Snapshot,
    after: Snapshot,
    calls: usize,
}

impl Phase {
    pub fn new(before: Snapshot, after: Snapshot, calls: usize) -> Self {
        Self {
            before,
            after,
            calls,
        }
    }

    pub fn usage(&self, pid: u32) -> Usage {
        let process = self
            .spent()
            .filter(|&(p, _, _)| p == pid)
            .map(|(_, _, secs)| secs)
            .sum();
        Usage {
            process_cores: self.cores(process),
            process_ms_per_call: self.ms_per_call(process),
            machine_busy_cores: self.cores(self.machine_busy_secs()),
        }
    }

    pub fn by_group(&self, services: Services) -> Vec<GroupUsage> {
        let mut secs = [0.0; Group::ALL.len()];
        for (pid, comm, spent) in self.spent() {
            secs[services.group(pid, comm) as usize] += spent;
        }
        let named: f64 = secs[..Group::Other as usize].iter().sum();
        secs[Group::Other as usize] = self.machine_busy_secs() - named;
        Group::ALL
            .iter()
            .zip(secs)
            .map(|(group, secs)| GroupUsage {
                group: group.name(),
                cores: self.cores(secs),
                ms_per_call: self.ms_per_call(secs),
            })
            .collect()
    }

    /// Pid, comm and CPU seconds of every process seen at the end: one that started within
    /// the phase counts from 0; one that ended within it cannot be read, and its time is
    /// left in the machine's total.
    fn spent(&self) -> impl Iterator<Item = (u32, &str, f64)> {
        self.after.processes.iter().map(|(key, end)| {
            let start = self.before.processes.get(key).map_or(0.0, |p| p.secs);
            (key.0, end.comm.as_str(), end.secs - start)
        })
    }

    fn machine_busy_secs(&self) -> f64 {
        self.after.machine_busy_secs - self.before.machine_busy_secs
    }

    fn cores(&self, secs: f64) -> f64 {
        let wall = (self.after.at - self.before.at).as_secs_f64();
        secs / wall.max(f64::EPSILON)
    }

    fn ms_per_call(&self, secs: f64) -> f64 {
        secs * 1000.0 / self.calls.max(1) as f64
    }
}

/// Start time (in ticks since boot) and CPU time of a `/proc/<pid>/stat` line.
fn parse_stat(stat: &str) -> anyhow::Result<(u64, Process)> {
    // The command name is in parentheses and may hold spaces and parentheses itself.
    let (head, rest) = stat.rsplit_once(')').context("no ')' after the comm")?;
    let comm = head.split_once('(').context("no '(' before the comm")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field n of stat(5) is fields[n - 3]: the first after ')' is field 3.
    let field = |n: usize| -> anyhow::Result<u64> {
        let value = fields.get(n - 3).with_context(|| format!("no field {n}"))?;
        value.parse().with_context(|| format!("field {n}: {value}"))
    };
    Ok((
        field(22)?,
        Process {
            comm: comm.to_owned(),
            secs: (field(14)? + field(15)?) as f64 / TICKS_PER_SEC,
        },
    ))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reads_a_comm_with_spaces_and_parentheses() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 7777 0 0";
        let (started, process) = parse_stat(stat).unwrap();
        assert_eq!(started, 7777);
        assert_eq!(process.comm, "a (b) c");
        assert!((process.secs - 3.0).abs() < 1e-9);
    }

    fn snapshot_of(processes: &[(u32, u64, &str, f64)], busy: f64, at: Instant) -> Snapshot {
        Snapshot {
            processes: processes
                .iter()
                .map(|&(pid, started, comm, secs)| {
                    let comm = comm.to_owned();
                    ((pid, started), Process { comm, secs })
                })
                .collect(),
            machine_busy_secs: busy,
            at,
        }
    }

    #[test]
    fn groups_add_up_to_the_machine() {
        let t0 = Instant::now();
        let me = std::process::id();
        let before = snapshot_of(
            &[
                (10, 1, "gateway", 1.0),
                (20, 1, "beam.smp", 5.0),
                (30, 1, "postgres", 2.0),
                // Ends within the phase: left to "other".
                (31, 1, "postgres", 9.0),
                // Its pid is reused by the next backend, which counts from 0.
                (32, 1, "postgres", 4.0),
                (me, 1, "bench", 1.0),
                (50, 1, "worker", 3.0),
            ],
            100.0,
            t0,
        );
        let after = snapshot_of(
            &[
                (10, 1, "gateway", 2.0),
                (20, 1, "beam.smp", 5.5),
                (21, 9, "epmd", 0.1),
                (30, 1, "postgres", 2.2),
                (32, 9, "postgres", 0.3),
                (40, 9, "worker", 1.0),
                (me, 1, "bench", 1.5),
                // Another worker on the machine is not ours.
                (50, 1, "worker", 3.2),
            ],
            104.0,
            t0 + Duration::from_secs(2),
        );
        let phase = Phase::new(before, after, 1000);
        let groups = phase.by_group(Services {
            gateway: 10,
            worker: Some(40),
        });
        let ms: Vec<(&str, f64)> = groups.iter().map(|g| (g.group, g.ms_per_call)).collect();
        let expected = [
            ("gateway", 1.0),
            ("worker", 1.0),
            ("rabbitmq", 0.6),
            ("postgres", 0.5),
            ("load generator", 0.5),
            ("other", 0.4),
        ];
        for ((group, ms), (want_group, want_ms)) in ms.iter().zip(expected) {
            assert_eq!(*group, want_group);
            assert!(
                (ms - want_ms).abs() < 1e-9,
                "{group}: {ms} ms, not {want_ms}"
            );
        }
        let cores: f64 = groups.iter().map(|g| g.cores).sum();
        assert!((cores - 2.0).abs() < 1e-9);
        assert!((phase.usage(10).process_cores - 0.5).abs() < 1e-9);
    }
}
