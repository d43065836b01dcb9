//! A private three-node RabbitMQ cluster for one test, run by `deploy/rabbitmq-cluster.sh`
//! with ports, node names and a directory of its own, and stopped (its directory removed)
//! when dropped.

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Output};

use secrecy::SecretString;

/// Where the blocks of ports are looked for: 3 AMQP ports from the base, 3 distribution ports
/// from the base + `DIST_OFFSET`. Away from the script's defaults (5701, 25701), which a
/// person or a chaos run may be using.
const FIRST_BASE: u16 = 5741;
const LAST_BASE: u16 = 5799;
const DIST_OFFSET: u16 = 20000;

pub struct Cluster {
    base: u16,
    dir: PathBuf,
}

impl Cluster {
    /// Starts a cluster on the first block of free ports, or returns `None`, having said so
    /// on the terminal, when RabbitMQ is not installed.
    pub fn start() -> Option<Self> {
        if !rabbitmq_installed() {
            // Straight to stderr: the test harness shows what print macros write only for
            // failing tests, and a skip must not look like a pass.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: rabbitmq-server is not installed, so the cluster test cannot run"
            );
            return None;
        }
        let base = (FIRST_BASE..=LAST_BASE)
            .step_by(3)
            .find(|&base| (0..3).all(|i| free(base + i) && free(base + DIST_OFFSET + i)))
            .expect("a free block of three AMQP and three distribution ports");
        let cluster = Self {
            base,
            dir: std::env::temp_dir().join(format!("callq-cluster-test-{base}")),
        };
        let started = cluster.run(&["start"]);
        assert!(
            started.status.success(),
            "deploy/rabbitmq-cluster.sh start failed:\n{}",
            String::from_utf8_lossy(&started.stderr)
        );
        Some(cluster)
    }

    /// One AMQP URL per node, in node order.
    pub fn urls(&self) -> Vec<SecretString> {
        (0..3)
            .map(|i| {
                SecretString::from(format!(
                    "amqp://guest:guest@127.0.0.1:{}/%2f",
                    self.base + i
                ))
            })
            .collect()
    }

    /// Stops node `n` (1-3) gracefully.
    pub fn stop_node(&self, n: u8) {
        self.expect(&["stop-node", &n.to_string()]);
    }

    /// Starts node `n` again and waits until it takes connections.
    pub fn start_node(&self, n: u8) {
        self.expect(&["start-node", &n.to_string()]);
    }

    /// The node (1-3) leading the quorum queue `queue`; `None` while an election is under
    /// way.
    pub fn leader(&self, queue: &str) -> Option<u8> {
        let output = self.run(&["leader", queue]);
        output
            .status
            .success()
            .then(|| parse_node(&String::from_utf8_lossy(&output.stdout)))
    }

    /// How many of the quorum queue `queue`'s members run (0-3); 0 while no node answers.
    pub fn online(&self, queue: &str) -> u8 {
        let output = self.run(&["online", queue]);
        if output.status.success() {
            parse_node(&String::from_utf8_lossy(&output.stdout))
        } else {
            0
        }
    }

    /// The nodes (1-3) holding a client connection named `name`.
    pub fn connected(&self, name: &str) -> Vec<u8> {
        self.expect(&["connected", name])
            .lines()
            .map(parse_node)
            .collect()
    }

    fn expect(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "deploy/rabbitmq-cluster.sh {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(script())
            .args(args)
            .env("CALLQ_CLUSTER_DIR", &self.dir)
            .env("CALLQ_CLUSTER_NAME", format!("callqtest{}n", self.base))
            .env("CALLQ_CLUSTER_AMQP_PORT", self.base.to_string())
            .env(
                "CALLQ_CLUSTER_DIST_PORT",
                (self.base + DIST_OFFSET).to_string(),
            )
            .output()
            .expect("run deploy/rabbitmq-cluster.sh")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run(&["stop"]);
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/rabbitmq-cluster.sh")
}

/// Where the script looks for it: Debian's scripts, or `rabbitmq-server` on the PATH.
fn rabbitmq_installed() -> bool {
    std::path::Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").exists()
        || Command::new("sh")
            .args(["-c", "command -v rabbitmq-server"])
            .output()
            .is_ok_and(|o| o.status.success())
}

fn free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn parse_node(text: &str) -> u8 {
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a node number: {text:?}"))
}
