//! The load generator: `concurrency` tasks, each with one keep-alive HTTP/1.1 connection of
//! its own, take the next pre-built body until all are sent. Every answer's latency is
//! kept, so percentiles are exact; nothing is sampled.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::io::Write;

use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::http1::Connection;
use crate::latency::Latencies;

pub struct Target {
    pub addr: SocketAddr,
    /// `/api/v1/integrations/{id}/phone_calls`.
    pub path: String,
    pub token: String,
}

pub struct LoadResult {
    /// When the first request was about to be sent (wall clock, to compare with rows).
    pub started_at: DateTime<Utc>,
    /// First request sent to last answer read.
    pub elapsed: Duration,
    /// Answered 2xx.
    pub accepted: usize,
    /// By status code, or `connection` for a request that got no answer.
    pub errors: BTreeMap<String, usize>,
    /// Of every request, whatever its answer.
    pub latencies: Latencies,
}

#[derive(Default)]
struct TaskResult {
    accepted: usize,
    errors: BTreeMap<String, usize>,
    micros: Vec<u64>,
}

pub async fn run(
    target: Arc<Target>,
    bodies: Arc<Vec<Bytes>>,
    concurrency: usize,
) -> anyhow::Result<LoadResult> {
    // Connections are open before the clock starts: the figure is about calls, not handshakes.
    let mut connections = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        connections.push(connect(target.addr).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started_at = Utc::now();
    let started = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|connection| {
            let (target, bodies, next) = (target.clone(), bodies.clone(), next.clone());
            tokio::spawn(send_all(connection, target, bodies, next))
        })
        .collect();
    let mut total = TaskResult::default();
    for task in tasks {
        let part = task.await.context("a load task panicked")??;
        total.accepted += part.accepted;
        for (k, v) in part.errors {
            *total.errors.entry(k).or_default() += v;
        }
        total.micros.extend(part.micros);
    }
    Ok(LoadResult {
        started_at,
        elapsed: started.elapsed(),
        accepted: total.accepted,
        errors: total.errors,
        latencies: Latencies::from_micros(total.micros),
    })
}

async fn send_all(
    mut connection: Connection,
    target: Arc<Target>,
    bodies: Arc<Vec<Bytes>>,
    next: Arc<AtomicUsize>,
) -> anyhow::Result<TaskResult> {
    let mut result = TaskResult::default();
    // Only the length differs between requests: the rest of the head is written once.
    let mut head = format!(
        "POST {} HTTP/1.1\r\nhost: {}\r\nauthorization: {}\r\ncontent-type: application/json\r\ncontent-length: ",
        target.path, target.addr, target.token
    )
    .into_bytes();
    let fixed = head.len();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(body) = bodies.get(i) else {
            return Ok(result);
        };
        head.truncate(fixed);
        write!(head, "{}\r\n\r\n", body.len())?;
        let sent = Instant::now();
        let answer = connection.exchange(&head, body).await;
        result.micros.push(sent.elapsed().as_micros() as u64);
        let reconnect = match answer {
            Ok((status, _, close)) => {
                if (200..300).contains(&status) {
                    result.accepted += 1;
                } else {
                    *result.errors.entry(status.to_string()).or_default() += 1;
                }
                close
            }
            Err(_) => {
                *result.errors.entry("connection".into()).or_default() += 1;
                true
            }
        };
        if reconnect {
            connection = connect(target.addr).await?;
        }
    }
}

async fn connect(addr: SocketAddr) -> anyhow::Result<Connection> {
    Connection::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))
}

/// Status and body of one `GET`, e.g. of `/readyz` or `/metrics`.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut connection = connect(addr).await?;
    let head = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    let (status, body, _) = connection.exchange(head.as_bytes(), &[]).await?;
    Ok((status, body))
}
