//! `bench`: measures the pipeline on this machine against the raw limits of what it depends
//! on, at one or more sizes. It is both the orchestrator (databases, queues, the gateway and
//! worker as child processes) and the load generator. See the README's "Benchmark".

mod bodies;
mod chaos;
mod chats;
mod cpu;
mod fixture;
mod http1;
mod latency;
mod load;
mod machine;
mod media_server;
mod phases;
mod processes;
mod raw;
mod report;
mod upsert_scale;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};

use crate::fixture::Fixture;
use crate::report::{Report, SizeReport};

/// Bound operators per integration: calls spread over them as over a call centre's shift.
const OPERATORS: usize = 50;

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Benchmark the gateway, the worker and the whole pipeline against the raw limits of RabbitMQ and Postgres",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Calls per size, comma-separated; each size runs every phase against fresh state.
    #[arg(long, value_delimiter = ',', default_value = "20000,200000")]
    sizes: Vec<usize>,
    /// Where to write the JSON [default: bench/latest.json in the target directory, plus a
    /// timestamped copy beside it].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Connections (one task each) the load generator keeps busy.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Faults under load against private RabbitMQ and Postgres, then a count of what was
    /// lost or duplicated (deploy/chaos.sh runs it).
    Chaos(chaos::Args),
    /// The raw upsert rate with millions of calls already stored (see docs/scale.md).
    UpsertScale(upsert_scale::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Some(Command::Chaos(chaos)) => {
            if !chaos::run(chaos).await? {
                std::process::exit(1);
            }
            return Ok(());
        }
        Some(Command::UpsertScale(scale)) => return upsert_scale::run(scale, OPERATORS).await,
        None => {}
    }
    anyhow::ensure!(
        !args.sizes.is_empty() && args.sizes.iter().all(|&n| n > 0),
        "--sizes needs at least one size above 0"
    );
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be above 0");
    let started_at = chrono::Utc::now();
    let outputs = outputs(args.out.clone(), started_at)?;
    let logs = outputs[0].parent().unwrap_or(Path::new(".")).join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;

    let machine = machine::describe().await;
    let mut sizes = Vec::with_capacity(args.sizes.len());
    for &n in &args.sizes {
        let size = run_size(n, args.concurrency, &logs).await?;
        println!("{}", report::table(&size));
        sizes.push(size);
    }

    let summary = report::summary(&sizes);
    let report = Report {
        started_at: started_at.to_rfc3339(),
        machine,
        concurrency: args.concurrency,
        app_overrides: app_overrides(),
        sizes,
        summary: summary.clone(),
    };
    let json = serde_json::to_vec_pretty(&report)?;
    for path in &outputs {
        std::fs::write(path, &json).with_context(|| format!("write {}", path.display()))?;
    }
    println!("JSON: {}", outputs[0].display());
    println!("services' logs: {}", logs.display());
    println!("{summary}");
    Ok(())
}

/// Runs one size against a fixture of its own, which is removed whatever happens, Ctrl-C
/// included (the child processes are killed when the phases are dropped).
async fn run_size(n: usize, concurrency: usize, logs: &Path) -> anyhow::Result<SizeReport> {
    let fixture = Fixture::create(OPERATORS).await?;
    let outcome = tokio::select! {
        outcome = phases::run(&fixture, n, concurrency, logs) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    let outcome = outcome.with_context(|| format!("size {n}"));
    for problem in fixture.remove().await {
        eprintln!("bench: could not remove {problem}");
    }
    outcome
}

/// The JSON's paths: `--out`, or `latest.json` and a timestamped copy in `bench/` of the
/// target directory the binary was built into (so `CARGO_TARGET_DIR` is respected).
fn outputs(
    out: Option<PathBuf>,
    at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<PathBuf>> {
    if let Some(out) = out {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        return Ok(vec![out]);
    }
    let exe = std::env::current_exe().context("locate the bench executable")?;
    // target/release/bench -> target/bench
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the bench executable has no target directory")?
        .join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(vec![
        dir.join("latest.json"),
        dir.join(format!("{}.json", at.format("%Y%m%d-%H%M%S"))),
    ])
}

/// `APP_*` variables in the bench's environment reach the gateway and worker (those the
/// bench sets itself win); recorded so that a tuned run is not mistaken for a default one.
fn app_overrides() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("APP_"))
        .map(|(k, v)| {
            let secret = ["URL", "TOKEN", "PASSWORD"].iter().any(|s| k.contains(s));
            (k, if secret { "(redacted)".into() } else { v })
        })
        .collect()
}
