//! A recording host on loopback whose behaviour each test chooses.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use axum::extract::{Query, Request};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;

pub struct MediaServer {
    pub base: String,
    slow_arrivals: Arc<AtomicUsize>,
    hits: Arc<AtomicUsize>,
}

/// A recording host that accepts connections and never answers (a firewall that lets the
/// SYN through, a hung server): its base URL. Connections stay open until the test ends.
pub async fn silent_host() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind silent host");
    let base = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    base
}

impl MediaServer {
    /// Paths: `/ok.wav` (HEAD 200, audio/wav, 1234 bytes), `/s3.wav` (HEAD 403, ranged GET 206
    /// of 5000 bytes), `/missing.wav` (404), `/slow.wav` (answers after `slow`), `/late.wav`
    /// (404 the first time, 200 after: a recording uploaded after its call was posted),
    /// `/redirect?to=<url>` (302 to `url`).
    pub async fn start(slow: Duration) -> Self {
        let slow_arrivals = Arc::new(AtomicUsize::new(0));
        let arrivals = slow_arrivals.clone();
        let late_asked = Arc::new(AtomicUsize::new(0));
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = Router::new()
            .route(
                "/ok.wav",
                any(|| async {
                    (
                        [
                            (header::CONTENT_TYPE, "audio/wav"),
                            (header::CONTENT_LENGTH, "1234"),
                        ],
                        "",
                    )
                }),
            )
            .route(
                "/s3.wav",
                any(
                    |method: Method, headers: axum::http::HeaderMap| async move {
                        if method == Method::HEAD {
                            return StatusCode::FORBIDDEN.into_response();
                        }
                        match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
                            Some("bytes=0-0") => (
                                StatusCode::PARTIAL_CONTENT,
                                [
                                    (header::CONTENT_TYPE, "audio/mpeg"),
                                    (header::CONTENT_RANGE, "bytes 0-0/5000"),
                                ],
                                "x",
                            )
                                .into_response(),
                            _ => StatusCode::BAD_REQUEST.into_response(),
                        }
                    },
                ),
            )
            .route("/missing.wav", any(|| async { StatusCode::NOT_FOUND }))
            .route(
                "/late.wav",
                any(move || async move {
                    match late_asked.fetch_add(1, Ordering::SeqCst) {
                        0 => StatusCode::NOT_FOUND,
                        _ => StatusCode::OK,
                    }
                }),
            )
            .route(
                "/slow.wav",
                any(move || async move {
                    arrivals.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(slow).await;
                    ([(header::CONTENT_TYPE, "audio/wav")], "")
                }),
            )
            .route(
                "/redirect",
                any(|Query(query): Query<HashMap<String, String>>| async move {
                    match query.get("to") {
                        Some(to) => {
                            (StatusCode::FOUND, [(header::LOCATION, to.clone())]).into_response()
                        }
                        None => StatusCode::BAD_REQUEST.into_response(),
                    }
                }),
            )
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                counted.fetch_add(1, Ordering::SeqCst);
                next.run(request)
            }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind media server");
        let base = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base,
            slow_arrivals,
            hits,
        }
    }

    /// Requests received so far, whatever their path.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Waits until `/slow.wav` has been asked for `n` times: the worker is then holding those
    /// calls, not merely sent them by the broker.
    pub async fn wait_for_slow_requests(&self, n: usize, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.slow_arrivals.load(Ordering::SeqCst) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} requests for /slow.wav arrived",
                self.slow_arrivals.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
