//! The gateway and worker as real child processes (the binaries built beside this one), and
//! their memory as the kernel counts it: peak (`VmHWM`) and current (`VmRSS`) resident set.

use std::future::Future;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// A graceful stop finishes in-flight work; past this the child is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const RSS_SAMPLE_EVERY: Duration = Duration::from_secs(1);

pub struct Service {
    pub name: &'static str,
    pid: u32,
    /// Killed when dropped, so an error anywhere in the bench leaves no process behind.
    child: Child,
}

impl Service {
    /// `name` is a binary next to the bench's own; its output goes to `log`.
    pub fn start(name: &'static str, env: &[(String, String)], log: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()
            .context("locate the bench executable")?
            .with_file_name(name);
        if !exe.exists() {
            bail!(
                "{} is missing: build the workspace first (`cargo build --release --bins`, as deploy/bench.sh does)",
                exe.display()
            );
        }
        let out =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new(&exe)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", exe.display()))?;
        let pid = child.id().context("the child has a pid")?;
        Ok(Self { name, pid, child })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Fails when the process has died: a benchmark of a crashed service means nothing.
    /// Reads `/proc` rather than reaping, so that it needs no `&mut` while others sample.
    pub fn check_alive(&self) -> anyhow::Result<()> {
        let state = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("State:"))
                    .map(str::to_owned)
            });
        match state {
            Some(state) if !state.trim_start().starts_with('Z') => Ok(()),
            _ => bail!("{} exited early; see its log", self.name),
        }
    }

    pub fn rss_kb(&self) -> anyhow::Result<u64> {
        status_kb(self.pid, "VmRSS:")
    }

    /// Reads the peak RSS, then stops the process with SIGTERM (as an orchestrator would)
    /// and waits for it; returns the peak in kB.
    pub async fn stop(mut self) -> anyhow::Result<u64> {
        let peak = status_kb(self.pid, "VmHWM:")?;
        let pid = i32::try_from(self.pid).context("pid")?;
        kill(Pid::from_raw(pid), Signal::SIGTERM)
            .with_context(|| format!("SIGTERM {}", self.name))?;
        let status: ExitStatus = match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => status?,
            Err(_) => bail!("{} did not stop within {STOP_TIMEOUT:?}", self.name),
        };
        if !status.success() {
            bail!("{} stopped with {status}; see its log", self.name);
        }
        Ok(peak)
    }

    /// SIGKILL, as the OOM killer or a lost node does: nothing in hand is finished or acked.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child
            .start_kill()
            .with_context(|| format!("SIGKILL {}", self.name))?;
        self.child.wait().await?;
        Ok(())
    }
}

fn status_kb(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

/// Runs `work` while sampling each service's RSS (kB) every second, the first sample at the
/// start: whether memory stays flat under sustained load shows in the series.
pub async fn sampling_rss<T>(
    services: &[&Service],
    work: impl Future<Output = T>,
) -> (T, Vec<Vec<u64>>) {
    tokio::pin!(work);
    let mut samples = vec![Vec::new(); services.len()];
    let mut tick = tokio::time::interval(RSS_SAMPLE_EVERY);
    loop {
        tokio::select! {
            out = &mut work => return (out, samples),
            _ = tick.tick() => {
                for (service, series) in services.iter().zip(&mut samples) {
                    if let Ok(kb) = service.rss_kb() {
                        series.push(kb);
                    }
                }
            }
        }
    }
}
