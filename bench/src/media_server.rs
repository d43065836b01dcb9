//! Where the bodies' recordings live: local servers that count the requests they get and
//! answer them one of three ways. A healthy recording host answers every HEAD at once with
//! 200, `audio/wav` and a length (and a ranged GET with its first byte), so the worker's
//! probes succeed; a slow one answers the same after a delay; a silent one accepts the
//! connection, reads the request and never answers (a hung server, a firewall that lets the
//! SYN through), so its probes wait out their deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::http1::Connection;

const HEAD_ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: audio/wav\r\ncontent-length: 1234\r\n\r\n";
/// What a probe's `Range: bytes=0-0` GET gets, were the HEAD refused.
const GET_ANSWER: &[u8] = b"HTTP/1.1 206 Partial Content\r\ncontent-type: audio/wav\r\n\
content-range: bytes 0-0/1234\r\ncontent-length: 1\r\n\r\nR";

/// How a server answers each request.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    At(Duration),
    Never,
}

impl Answer {
    pub const AT_ONCE: Self = Self::At(Duration::ZERO);
}

pub struct MediaServer {
    /// `http://127.0.0.1:PORT`: a host of its own to the worker, which keys hosts by host:port.
    pub base: String,
    requests: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl MediaServer {
    pub async fn start(answer: Answer) -> anyhow::Result<Self> {
        let requests = Arc::new(AtomicU64::new(0));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind a media server")?;
        let base = format!("http://{}", listener.local_addr()?);
        let counter = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(serve(stream, answer, Arc::clone(&counter)));
                    }
                    Err(e) => eprintln!("bench: a media server cannot accept: {e}"),
                }
            }
        });
        Ok(Self {
            base,
            requests,
            task,
        })
    }

    /// Requests received so far, answered or not.
    pub fn probes(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for MediaServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one keep-alive connection until the prober closes it. A silent server goes on
/// reading, so the connection ends when the prober gives up on it.
async fn serve(stream: tokio::net::TcpStream, answer: Answer, requests: Arc<AtomicU64>) {
    let Ok(mut connection) = Connection::new(stream) else {
        return;
    };
    while let Ok(Some(method)) = connection.next_request().await {
        requests.fetch_add(1, Ordering::Relaxed);
        let Answer::At(delay) = answer else {
            continue;
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let bytes = if method == "HEAD" {
            HEAD_ANSWER
        } else {
            GET_ANSWER
        };
        if connection.send(bytes).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A GET: the bench's client would wait for a HEAD answer's `content-length` of body.
    const GET: &[u8] = b"GET /recordings/a.wav HTTP/1.1\r\nhost: x\r\nrange: bytes=0-0\r\n\r\n";

    async fn connect(server: &MediaServer) -> Connection {
        let addr = server.base.trim_start_matches("http://").parse().unwrap();
        Connection::connect(addr).await.unwrap()
    }

    #[tokio::test]
    async fn a_slow_host_answers_after_its_delay() {
        let server = MediaServer::start(Answer::At(Duration::from_millis(100)))
            .await
            .unwrap();
        let mut connection = connect(&server).await;
        let asked = Instant::now();
        let (status, _, _) = connection.exchange(GET, &[]).await.unwrap();
        assert_eq!(status, 206);
        assert!(asked.elapsed() >= Duration::from_millis(100));
        assert_eq!(server.probes(), 1);
    }

    #[tokio::test]
    async fn a_silent_host_counts_the_request_and_never_answers() {
        let server = MediaServer::start(Answer::Never).await.unwrap();
        let mut connection = connect(&server).await;
        let answer =
            tokio::time::timeout(Duration::from_millis(300), connection.exchange(GET, &[])).await;
        assert!(answer.is_err(), "answered: {answer:?}");
        assert_eq!(server.probes(), 1);
    }
}
