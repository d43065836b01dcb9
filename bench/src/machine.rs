//! What the figures were measured on, so that two runs can be compared fairly.

use std::process::Command;

use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::fixture::PG_ADMIN_URL;

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_mb: Option<u64>,
    pub kernel: Option<String>,
    pub postgres: Option<String>,
    pub rabbitmq: Option<String>,
    /// `git describe --always --dirty` of the working directory.
    pub commit: Option<String>,
}

pub async fn describe() -> Machine {
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        memory_mb: std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kb| kb / 1024)
        }),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_owned()),
        postgres: postgres_version().await,
        rabbitmq: output("rabbitmqctl", &["-q", "version"]),
        commit: output("git", &["describe", "--always", "--dirty"]),
    }
}

async fn postgres_version() -> Option<String> {
    let mut conn = PgConnection::connect(PG_ADMIN_URL).await.ok()?;
    let version = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await
        .ok();
    let _ = conn.close().await;
    version
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The 1-minute load average: above the CPU count before a size starts, something else
/// is competing for the machine (or the previous size is still winding down).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
