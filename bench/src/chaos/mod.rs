//! `bench chaos`: the pipeline under steady load while its parts fail one after another
//! (RabbitMQ restarted, the worker SIGKILLed, a gateway SIGTERMed, Postgres stopped; with
//! `--cluster`, the work queue's leader node and then a follower stopped), then drained and
//! counted: every call answered 2xx must be stored or dead-lettered, and stored once.
//! RabbitMQ and Postgres are private instances that `deploy/chaos.sh` starts and that this
//! command acts on through `--control`; never the machine's shared ones. See the README's
//! "Operations".

mod drain;
mod faults;
mod pipeline;
mod table;
mod tally;
mod traffic;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::Utc;
use shared::broker::Topology;

use crate::fixture::{Endpoints, Fixture};
use crate::media_server::{Answer, MediaServer};
use faults::{Control, Step};
use pipeline::Pipeline;
use traffic::{Calls, Gateways, Load};

/// Bound operators of the integration the calls go to.
const OPERATORS: usize = 50;
/// The machine's shared servers, which a chaos run must never stop.
const SHARED_PORTS: [&str; 2] = [":5432/", ":5672/"];

#[derive(clap::Args)]
pub struct Args {
    /// The private Postgres's superuser database, e.g.
    /// postgres://postgres@127.0.0.1:55432/postgres. It is stopped during the run.
    #[arg(long)]
    pg_admin_url: String,
    /// The private RabbitMQ (in a cluster, one node's address). It is restarted during the run.
    #[arg(long)]
    amqp_url: String,
    /// Command that acts on the private services, run as `<control> <verb> [arg]` with the
    /// verbs broker-stop, broker-start, pg-stop, pg-start, unacked QUEUE, and for a cluster
    /// leader QUEUE, node-stop N, node-start N (deploy/chaos-services.sh DIR).
    #[arg(long)]
    control: String,
    /// The broker is a three-node cluster: also stop the work queue's leader node, then a
    /// follower.
    #[arg(long)]
    cluster: bool,
    /// Gateways the load is spread over; one of them is SIGTERMed.
    #[arg(long, default_value_t = 2)]
    gateways: usize,
    /// Keep-alive connections posting calls.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Calls per second in all; 0 posts each call as soon as the previous one is answered.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Steady load before the first fault, between faults and after the last.
    #[arg(long, default_value_t = 15)]
    settle_secs: u64,
    /// How long Postgres stays stopped.
    #[arg(long, default_value_t = 45)]
    pg_outage_secs: u64,
    /// How long a cluster node stays stopped.
    #[arg(long, default_value_t = 20)]
    node_outage_secs: u64,
    /// Longest wait for the pipeline to drain after the load; a retry schedule's delays
    /// (broker.retry_delays_ms) decide how long calls that met the outage wait.
    #[arg(long, default_value_t = 900)]
    drain_timeout_secs: u64,
}

/// Runs the chaos and prints its table; true when nothing accepted was lost or duplicated.
pub async fn run(args: Args) -> anyhow::Result<bool> {
    for url in [&args.pg_admin_url, &args.amqp_url] {
        if SHARED_PORTS.iter().any(|port| url.contains(port)) {
            bail!("{url} looks like the machine's shared server, which a chaos run would stop; deploy/chaos.sh starts private ones");
        }
    }
    anyhow::ensure!(
        args.gateways >= 2,
        "--gateways must be at least 2: the load moves to another while one stops"
    );
    anyhow::ensure!(args.connections > 0, "--connections must be above 0");
    let endpoints = Endpoints {
        pg_admin_url: args.pg_admin_url.clone(),
        amqp_url: args.amqp_url.clone(),
    };
    let fixture = Fixture::create_on(endpoints, OPERATORS).await?;
    let outcome = tokio::select! {
        outcome = chaos(&args, &fixture) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    for problem in fixture.remove().await {
        eprintln!("chaos: could not remove {problem}");
    }
    outcome
}

async fn chaos(args: &Args, fixture: &Fixture) -> anyhow::Result<bool> {
    let logs = logs_dir()?;
    let media = MediaServer::start(Answer::AT_ONCE).await?;
    progress("starting the gateways and the worker");
    let mut pipeline = Pipeline::start(fixture, args.gateways, logs.clone()).await?;
    let mut operators: Vec<String> = fixture.operators.keys().cloned().collect();
    operators.sort();
    let calls = Arc::new(Calls {
        operators,
        media_base: media.base.clone(),
        uid_prefix: "chaos".to_owned(),
        seed: 15,
    });
    let gateways = Arc::new(Gateways {
        addrs: pipeline.gateway_addrs(),
        path: format!(
            "/api/v1/integrations/{}/phone_calls",
            fixture.integration_id
        ),
        token: fixture.token.clone(),
    });
    let control = Control::new(args.control.clone());
    let work_queue = Topology::new(&fixture.broker).work_queue;
    let settle = Duration::from_secs(args.settle_secs);

    progress("load started");
    let load = Load::start(gateways, calls.clone(), args.connections, args.rate);
    tokio::time::sleep(settle).await;
    let mut faults = Vec::new();
    for step in plan(args) {
        progress(&format!("fault: {step:?}"));
        let fault = faults::make(step, &control, &mut pipeline, &load, &work_queue).await?;
        progress(&format!(
            "back after {:.1} s",
            (fault.ended - fault.began).as_secs_f64()
        ));
        faults.push(fault);
        tokio::time::sleep(settle).await;
    }
    let load_took = load.elapsed();
    let answers = load.stop().await?;
    progress("load stopped; waiting for the drain");
    let timeout = Duration::from_secs(args.drain_timeout_secs);
    let drained = drain::wait(fixture, &pipeline, timeout).await?;
    let tally = tally::count(fixture, &calls, &answers, faults).await?;
    if let Err(e) = pipeline.stop().await {
        eprintln!("chaos: stopping the pipeline: {e:#}");
    }
    let setup = table::Setup {
        gateways: args.gateways,
        connections: args.connections,
        per_sec: args.rate,
        load: load_took,
        drained_in: drained.took,
        drained: drained.finished,
        parked: drained.parked,
    };
    println!("{}", table::render(&setup, &tally));
    eprintln!("chaos: services' logs: {}", logs.display());
    Ok(tally.lost == 0 && tally.duplicates == 0 && drained.finished)
}

/// The faults, in order; a cluster's node outages come first, while the queues have their
/// full membership.
fn plan(args: &Args) -> Vec<Step> {
    let node = Duration::from_secs(args.node_outage_secs);
    let cluster = [Step::LeaderOutage(node), Step::FollowerOutage(node)];
    let cluster = if args.cluster { &cluster[..] } else { &[] };
    cluster
        .iter()
        .copied()
        .chain([
            Step::BrokerRestart,
            Step::WorkerKill,
            Step::GatewayTerm,
            Step::PostgresOutage(Duration::from_secs(args.pg_outage_secs)),
        ])
        .collect()
}

/// `chaos/<time>/` beside the bench's own output, in the target directory of the binary.
fn logs_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locate the bench executable")?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the bench executable has no target directory")?
        .join("chaos")
        .join(Utc::now().format("%Y%m%d-%H%M%S").to_string());
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

fn progress(what: &str) {
    eprintln!("chaos: {} {what}", Utc::now().format("%H:%M:%S%.3f"));
}
