//! The chaos run's load: `connections` tasks, each with one keep-alive HTTP/1.1 connection,
//! post calls at a steady pace until told to stop and record every answer (which call, what
//! status, when), so that each 2xx can be looked for among the rows afterwards. A connection
//! starts on a gateway of its own and moves to the next one that accepts when its own
//! refuses, as a load balancer would send it; a request whose connection closed under it is
//! sent again, as a PBX would, up to [`TRIES`] times.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::bodies::{self, Spec};
use crate::http1::Connection;

/// Sends of one call before it is recorded as unanswered.
const TRIES: u8 = 3;
/// A gateway answers within its request timeout; past this the connection is taken as dead.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);
const CONNECT_WITHIN: Duration = Duration::from_secs(2);
/// Between rounds of connection attempts while no gateway accepts.
const RECONNECT_EVERY: Duration = Duration::from_millis(100);

/// Where the calls go: every gateway, and one integration's path and token.
pub struct Gateways {
    pub addrs: Vec<SocketAddr>,
    /// `/api/v1/integrations/{id}/phone_calls`.
    pub path: String,
    pub token: String,
}

/// What the bodies are built from; each body is built when it is sent.
pub struct Calls {
    pub operators: Vec<String>,
    pub media_base: String,
    pub uid_prefix: String,
    pub seed: u64,
}

impl Calls {
    pub fn uid(&self, index: u32) -> String {
        format!("{}-{index}", self.uid_prefix)
    }

    fn body(&self, index: usize) -> bytes::Bytes {
        let spec = Spec {
            operators: &self.operators,
            media_base: &self.media_base,
            other_media: &[],
            uid_prefix: &self.uid_prefix,
            seed: self.seed,
        };
        bodies::nth(index, &spec)
    }
}

/// The fate of one call.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// The body's index, which names its uid ([`Calls::uid`]).
    pub index: u32,
    /// 0 when no send got an answer.
    pub status: u16,
    /// When the answer came (or the last send failed), from the start of the load.
    pub at: Duration,
    /// More than 1 when a connection closed under the call.
    pub tries: u8,
}

impl Answer {
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Load running in the background until [`Load::stop`].
pub struct Load {
    pub started: Instant,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<anyhow::Result<Vec<Answer>>>>,
}

impl Load {
    /// `per_sec` calls a second in all, spread evenly over the connections; 0 sends each call
    /// as soon as the previous answer on its connection is in.
    pub fn start(
        gateways: Arc<Gateways>,
        calls: Arc<Calls>,
        connections: usize,
        per_sec: f64,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let pace = (per_sec > 0.0).then(|| Duration::from_secs_f64(connections as f64 / per_sec));
        let started = Instant::now();
        let tasks = (0..connections)
            .map(|k| {
                let poster = Poster {
                    gateways: gateways.clone(),
                    calls: calls.clone(),
                    home: k % gateways.addrs.len(),
                    next: next.clone(),
                    stop: stop.clone(),
                    started,
                };
                tokio::spawn(poster.run(pace))
            })
            .collect();
        Self {
            started,
            stop,
            tasks,
        }
    }

    /// Time since the load started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops sending; every call sent is answered (or given up on) before this returns.
    pub async fn stop(mut self) -> anyhow::Result<Vec<Answer>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut answers = Vec::new();
        for task in std::mem::take(&mut self.tasks) {
            answers.extend(task.await.context("a load task panicked")??);
        }
        answers.sort_by_key(|a| a.index);
        Ok(answers)
    }
}

/// A run that fails half-way leaves no task posting behind it.
impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One connection's task.
struct Poster {
    gateways: Arc<Gateways>,
    calls: Arc<Calls>,
    /// The gateway this connection tries first.
    home: usize,
    next: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    started: Instant,
}

impl Poster {
    async fn run(self, pace: Option<Duration>) -> anyhow::Result<Vec<Answer>> {
        let mut ticks = pace.map(|every| {
            let mut ticks = tokio::time::interval(every);
            // A stalled gateway is not made up for with a burst once it answers again.
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks
        });
        let mut answers = Vec::new();
        let mut connection: Option<(Connection, SocketAddr)> = None;
        while !self.stop.load(Ordering::Relaxed) {
            if let Some(ticks) = &mut ticks {
                ticks.tick().await;
            }
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            let body = self.calls.body(index);
            let mut answer = Answer {
                index: u32::try_from(index).context("more calls than a u32 counts")?,
                status: 0,
                at: Duration::ZERO,
                tries: 0,
            };
            while answer.tries < TRIES {
                answer.tries += 1;
                let (mut conn, addr) = match connection.take() {
                    Some(open) => open,
                    None => match self.connect().await {
                        Some(open) => open,
                        None => break,
                    },
                };
                let head = self.head(addr, body.len())?;
                let exchange = tokio::time::timeout(ANSWER_WITHIN, conn.exchange(&head, &body));
                if let Ok(Ok((status, _, close))) = exchange.await {
                    answer.status = status;
                    if !close {
                        connection = Some((conn, addr));
                    }
                    break;
                }
            }
            answer.at = self.started.elapsed();
            answers.push(answer);
        }
        Ok(answers)
    }

    /// A connection to the home gateway, else to the next that accepts; `None` once the load
    /// is stopped while none accepts.
    async fn connect(&self) -> Option<(Connection, SocketAddr)> {
        let addrs = &self.gateways.addrs;
        loop {
            for k in 0..addrs.len() {
                let addr = addrs[(self.home + k) % addrs.len()];
                let attempt = tokio::time::timeout(CONNECT_WITHIN, Connection::connect(addr));
                if let Ok(Ok(conn)) = attempt.await {
                    return Some((conn, addr));
                }
            }
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            tokio::time::sleep(RECONNECT_EVERY).await;
        }
    }

    fn head(&self, addr: SocketAddr, len: usize) -> anyhow::Result<Vec<u8>> {
        let mut head = Vec::with_capacity(256);
        write!(
            head,
            "POST {} HTTP/1.1\r\nhost: {addr}\r\nauthorization: {}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n",
            self.gateways.path, self.gateways.token
        )?;
        Ok(head)
    }
}
