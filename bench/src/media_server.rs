//! Where the bodies' recordings live: a local server that answers every HEAD or GET with 200,
//! `audio/wav` and a small length, so the worker's probes succeed as they would against a
//! healthy recording host, and counts them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::header;
use axum::routing::any;
use axum::Router;
use tokio::task::JoinHandle;

pub struct MediaServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    probes: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl MediaServer {
    pub async fn start() -> anyhow::Result<Self> {
        let probes = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .fallback(any(answer))
            .with_state(Arc::clone(&probes));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the media server")?;
        let base = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("bench: media server failed: {e}");
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

async fn answer(State(probes): State<Arc<AtomicU64>>) -> impl axum::response::IntoResponse {
    probes.fetch_add(1, Ordering::Relaxed);
    (
        [
            (header::CONTENT_TYPE, "audio/wav"),
            (header::CONTENT_LENGTH, "1234"),
        ],
        "",
    )
}
