//! Where the bodies' recordings live: a local server that answers every HEAD with 200,
//! `audio/wav` and a length (and a ranged GET with its first byte), so the worker's probes
//! succeed as they would against a healthy recording host, and counts them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::http1::Connection;

const HEAD_ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: audio/wav\r\ncontent-length: 1234\r\n\r\n";
/// What a probe's `Range: bytes=0-0` GET gets, were the HEAD refused.
const GET_ANSWER: &[u8] = b"HTTP/1.1 206 Partial Content\r\ncontent-type: audio/wav\r\n\
content-range: bytes 0-0/1234\r\ncontent-length: 1\r\n\r\nR";

pub struct MediaServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    probes: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl MediaServer {
    pub async fn start() -> anyhow::Result<Self> {
        let probes = Arc::new(AtomicU64::new(0));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the media server")?;
        let base = format!("http://{}", listener.local_addr()?);
        let counter = Arc::clone(&probes);
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(serve(stream, Arc::clone(&counter)));
                    }
                    Err(e) => eprintln!("bench: media server cannot accept: {e}"),
                }
            }
        });
        Ok(Self { base, probes, task })
    }

    /// Requests answered so far.
    pub fn probes(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }
}

impl Drop for MediaServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers one keep-alive connection until the prober closes it.
async fn serve(stream: tokio::net::TcpStream, probes: Arc<AtomicU64>) {
    let Ok(mut connection) = Connection::new(stream) else {
        return;
    };
    while let Ok(Some(method)) = connection.next_request().await {
        probes.fetch_add(1, Ordering::Relaxed);
        let answer = if method == "HEAD" {
            HEAD_ANSWER
        } else {
            GET_ANSWER
        };
        if connection.send(answer).await.is_err() {
            return;
        }
    }
}
