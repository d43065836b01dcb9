//! The load generator: `concurrency` tasks, each with one keep-alive HTTP/1.1 connection of
//! its own, take the next pre-built body until all are sent. Every answer's latency is
//! kept, so percentiles are exact; nothing is sampled.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

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
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        senders.push(connect(target.addr).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started_at = Utc::now();
    let started = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|sender| {
            let (target, bodies, next) = (target.clone(), bodies.clone(), next.clone());
            tokio::spawn(send_all(sender, target, bodies, next))
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
    mut sender: SendRequest<Full<Bytes>>,
    target: Arc<Target>,
    bodies: Arc<Vec<Bytes>>,
    next: Arc<AtomicUsize>,
) -> anyhow::Result<TaskResult> {
    let mut result = TaskResult::default();
    let host = target.addr.to_string();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(body) = bodies.get(i) else {
            return Ok(result);
        };
        let request = Request::post(target.path.as_str())
            .header(HOST, host.as_str())
            .header(AUTHORIZATION, target.token.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))?;
        let sent = Instant::now();
        let answer = exchange(&mut sender, request).await;
        result.micros.push(sent.elapsed().as_micros() as u64);
        match answer {
            Ok(status) if (200..300).contains(&status) => result.accepted += 1,
            Ok(status) => *result.errors.entry(status.to_string()).or_default() += 1,
            Err(_) => {
                *result.errors.entry("connection".into()).or_default() += 1;
                sender = connect(target.addr).await?;
            }
        }
    }
}

/// Sends and reads the whole answer, so the connection is free for the next request.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<u16, hyper::Error> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

async fn connect<B>(addr: SocketAddr) -> anyhow::Result<SendRequest<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Status and body of one `GET`, e.g. of `/readyz` or `/metrics`.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Bytes)> {
    let mut sender = connect::<Empty<Bytes>>(addr).await?;
    let request = Request::get(path)
        .header(HOST, addr.to_string())
        .body(Empty::new())?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}
