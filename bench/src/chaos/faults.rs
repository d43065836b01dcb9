//! The faults, one after another under load, each timed from when it was made to when the
//! service it took was back. RabbitMQ and Postgres are acted on through a control command
//! (`deploy/chaos-services.sh DIR`, run as `<control> <verb> [arg]`), since only the script
//! that started them knows how; the gateways and the worker are the bench's own children.

use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};

use super::pipeline::Pipeline;
use super::traffic::Load;

/// A fault to make.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Every RabbitMQ node stopped, then started again on the same data.
    BrokerRestart,
    /// The worker SIGKILLed with deliveries in hand, and another started.
    WorkerKill,
    /// One gateway SIGTERMed under load and started again once it has exited.
    GatewayTerm,
    /// Postgres stopped this long, then started.
    PostgresOutage(Duration),
    /// The node leading the work queue stopped this long (cluster only).
    LeaderOutage(Duration),
    /// A node following the work queue's leader stopped this long (cluster only).
    FollowerOutage(Duration),
}

/// A fault as it happened: times are from the start of the load, as the answers' are.
#[derive(Debug, Clone)]
pub struct Fault {
    pub name: String,
    /// What the fault met or did, e.g. how many deliveries the killed worker held.
    pub note: String,
    pub began: Duration,
    /// When the service was back: started again and answering.
    pub ended: Duration,
    pub began_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

/// Runs `<control> <verb> [args]` through `sh`, so that the control may be any command line.
pub struct Control {
    command: String,
}

impl Control {
    pub fn new(command: String) -> Self {
        Self { command }
    }

    pub async fn run(&self, verb: &str, args: &[&str]) -> anyhow::Result<String> {
        let output = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{} \"$@\"", self.command))
            .arg("chaos-control")
            .arg(verb)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .with_context(|| format!("run {} {verb}", self.command))?;
        if !output.status.success() {
            bail!(
                "{} {verb} {}: {}\n{}",
                self.command,
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Messages of `queue` delivered and not yet acked, as the broker last counted them
    /// (quorum queues' counts lag a little): what a worker killed now loses from its hands.
    async fn unacked(&self, queue: &str) -> String {
        self.run("unacked", &[queue])
            .await
            .unwrap_or_else(|e| format!("? ({e:#})"))
    }

    /// The node (1, 2 or 3) leading `queue` in the cluster.
    async fn leader(&self, queue: &str) -> anyhow::Result<u8> {
        let out = self.run("leader", &[queue]).await?;
        out.parse()
            .with_context(|| format!("the control said the leader of {queue} is {out:?}"))
    }
}

/// Makes `step` and waits until what it took is back.
pub async fn make(
    step: Step,
    control: &Control,
    pipeline: &mut Pipeline,
    load: &Load,
    work_queue: &str,
) -> anyhow::Result<Fault> {
    // Asked before the clock starts: the CLI takes a second or two to answer.
    let held = match step {
        Step::WorkerKill => control.unacked(work_queue).await,
        _ => String::new(),
    };
    let began = (load.elapsed(), Utc::now());
    let (name, note) = match step {
        Step::BrokerRestart => {
            control.run("broker-stop", &[]).await?;
            control.run("broker-start", &[]).await?;
            ("RabbitMQ restarted".to_owned(), String::new())
        }
        Step::WorkerKill => {
            pipeline.kill_worker().await?;
            (
                "worker SIGKILLed".to_owned(),
                format!("{held} unacked just before the kill"),
            )
        }
        Step::GatewayTerm => {
            let exited_in = pipeline.terminate_gateway(0).await?;
            (
                "gateway SIGTERMed".to_owned(),
                format!("exited in {:.1} s", exited_in.as_secs_f64()),
            )
        }
        Step::PostgresOutage(outage) => {
            control.run("pg-stop", &[]).await?;
            tokio::time::sleep(outage).await;
            control.run("pg-start", &[]).await?;
            (
                format!("Postgres stopped {} s", outage.as_secs()),
                String::new(),
            )
        }
        Step::LeaderOutage(outage) => {
            let node = control.leader(work_queue).await?;
            node_outage(control, node, outage).await?;
            (
                format!("leader node stopped {} s", outage.as_secs()),
                format!("node {node}"),
            )
        }
        Step::FollowerOutage(outage) => {
            let node = control.leader(work_queue).await? % 3 + 1;
            node_outage(control, node, outage).await?;
            (
                format!("follower node stopped {} s", outage.as_secs()),
                format!("node {node}"),
            )
        }
    };
    pipeline.check_alive()?;
    Ok(Fault {
        name,
        note,
        began: began.0,
        began_at: began.1,
        ended: load.elapsed(),
        ended_at: Utc::now(),
    })
}

async fn node_outage(control: &Control, node: u8, outage: Duration) -> anyhow::Result<()> {
    let node = node.to_string();
    control.run("node-stop", &[&node]).await?;
    tokio::time::sleep(outage).await;
    control.run("node-start", &[&node]).await?;
    Ok(())
}
